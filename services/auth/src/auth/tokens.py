"""Access tokens (EdDSA JWTs with a kid) and opaque refresh tokens (stored as SHA-256)."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from collections.abc import Mapping

import jwt

from auth.keys import KeyRing


def issue_access_token(
    keyring: KeyRing,
    *,
    user_id: uuid.UUID,
    username: str,
    issuer: str,
    audience: str,
    ttl_seconds: int,
    now: dt.datetime,
) -> str:
    claims = {"sub": str(user_id), "name": username}
    return _signed(keyring, claims, issuer=issuer, audience=audience, ttl=ttl_seconds, now=now)


def issue_service_token(
    keyring: KeyRing,
    *,
    client_id: str,
    issuer: str,
    audience: str,
    ttl_seconds: int,
    now: dt.datetime,
) -> str:
    """A client-credentials token: the service is the subject, `client_id` says it is one."""
    claims = {"sub": client_id, "name": client_id, "client_id": client_id}
    return _signed(keyring, claims, issuer=issuer, audience=audience, ttl=ttl_seconds, now=now)


def _signed(
    keyring: KeyRing,
    claims: Mapping[str, str],
    *,
    issuer: str,
    audience: str,
    ttl: int,
    now: dt.datetime,
) -> str:
    """`claims` with the registered ones every token carries, signed with the active key."""
    registered = {
        "iss": issuer,
        "aud": audience,
        "iat": now,
        "nbf": now,
        "exp": now + dt.timedelta(seconds=ttl),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(
        {**claims, **registered},
        keyring.signing_key,
        algorithm="EdDSA",
        headers={"kid": keyring.active_kid},
    )


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def hash_refresh_token(token: str) -> str:
    """Refresh tokens are 256 random bits, so a fast unsalted hash is enough to store them."""
    return hashlib.sha256(token.encode()).hexdigest()
