"""`token_issuer`: signs access tokens like the auth service and serves their JWKS over real HTTP.

Tests of services that verify tokens use it instead of running auth:

    def test_me(token_issuer):
        token = token_issuer.issue("6f1c...", "alice")
        settings = Settings(jwks_url=token_issuer.jwks_url, jwt_issuer=token_issuer.issuer, ...)
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from harness.fakehttp import JsonServer, Reply, Request

ISSUER = "chat-auth"
AUDIENCE = "chat"
JWKS_PATH = "/.well-known/jwks.json"


def public_jwk(key: Ed25519PrivateKey, kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "alg": "EdDSA", "use": "sig"}


class TokenIssuer:
    """Ed25519 signing keys plus a JWKS HTTP server on a free loopback port."""

    def __init__(self, issuer: str = ISSUER, audience: str = AUDIENCE) -> None:
        self.issuer = issuer
        self.audience = audience
        self.keys: dict[str, Ed25519PrivateKey] = {}
        self.signing_kid = self.add_key()
        self.jwks_requests = 0  # how often the JWKS was fetched (cache tests)
        self.jwks_delay = 0.0  # seconds each JWKS answer is held back (concurrency tests)
        self._count_lock = threading.Lock()  # the server answers on many threads
        self._server = JsonServer(self._answer)

    @property
    def jwks_url(self) -> str:
        return f"{self._server.url}{JWKS_PATH}"

    def jwks(self) -> dict[str, Any]:
        return {"keys": [public_jwk(key, kid) for kid, key in self.keys.items()]}

    def add_key(self, *, sign_with_it: bool = True) -> str:
        """Publish a new key (rotation); by default new tokens are signed with it."""
        kid = uuid.uuid4().hex[:12]
        self.keys[kid] = Ed25519PrivateKey.generate()
        if sign_with_it:
            self.signing_kid = kid
        return kid

    def remove_key(self, kid: str) -> None:
        del self.keys[kid]

    def issue(
        self,
        sub: str,
        name: str,
        *,
        kid: str | None = None,
        key: Ed25519PrivateKey | None = None,
        **overrides: Any,
    ) -> str:
        """A signed access token; `overrides` replace claims (None removes one).

        `kid` picks the header kid (default: the signing key's; "" omits it), `key` signs with
        another key.
        """
        now = dt.datetime.now(dt.UTC)
        claims: dict[str, Any] = {
            "sub": sub,
            "name": name,
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "nbf": now,
            "exp": now + dt.timedelta(minutes=15),
            "jti": uuid.uuid4().hex,
        }
        claims.update(overrides)
        claims = {name_: value for name_, value in claims.items() if value is not None}
        header_kid = self.signing_kid if kid is None else kid
        signer = key or self.keys.get(header_kid) or self.keys[self.signing_kid]
        headers = {"kid": header_kid} if header_kid else {}  # kid="" leaves the header out
        return jwt.encode(claims, signer, algorithm="EdDSA", headers=headers)

    def bearer(self, sub: str, name: str, **overrides: Any) -> dict[str, str]:
        """`{"Authorization": "Bearer <token>"}` for a token from `issue(sub, name, ...)`."""
        return {"Authorization": f"Bearer {self.issue(sub, name, **overrides)}"}

    def close(self) -> None:
        self._server.close()

    def _answer(self, request: Request) -> Reply:
        if request.method != "GET" or request.path != JWKS_PATH:
            return 404, {"detail": "not found"}
        with self._count_lock:
            self.jwks_requests += 1
        time.sleep(self.jwks_delay)
        return 200, self.jwks()


@pytest.fixture
def token_issuer() -> Iterator[TokenIssuer]:
    """A running JWKS server and a signer for access tokens (see `TokenIssuer`)."""
    issuer = TokenIssuer()
    try:
        yield issuer
    finally:
        issuer.close()
