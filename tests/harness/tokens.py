"""`token_issuer`: signs access tokens like the auth service and serves their JWKS over real HTTP.

Tests of services that verify tokens use it instead of running auth:

    def test_me(token_issuer):
        token = token_issuer.issue("6f1c...", "alice")
        settings = Settings(jwks_url=token_issuer.jwks_url, jwt_issuer=token_issuer.issuer, ...)

Service tokens (client credentials) too: `service_token("backend")` signs one, and
`POST token_url` answers `grant_type=client_credentials` for the clients in `clients`
(`{"backend": SERVICE_SECRET}` by default), like auth's `/token`.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from harness.fakehttp import JsonServer, Reply, Request

ISSUER = "chat-auth"
AUDIENCE = "chat"
SERVICE_AUDIENCE = "chat-services"
SERVICE_SECRET = "test-service-secret"
JWKS_PATH = "/.well-known/jwks.json"
TOKEN_PATH = "/token"


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
        self.clients = {"backend": SERVICE_SECRET}  # client credentials /token accepts
        self.token_requests = 0
        self._server = JsonServer(self._answer)

    @property
    def jwks_url(self) -> str:
        return f"{self._server.url}{JWKS_PATH}"

    @property
    def url(self) -> str:
        """The stand-in's base URL (auth's: `/token` and the JWKS path below it)."""
        return self._server.url

    @property
    def token_url(self) -> str:
        return f"{self._server.url}{TOKEN_PATH}"

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

    def service_token(self, client_id: str, **overrides: Any) -> str:
        """A service token as auth's /token issues it (audience SERVICE_AUDIENCE)."""
        claims = {"aud": SERVICE_AUDIENCE, "client_id": client_id, **overrides}
        return self.issue(client_id, client_id, **claims)

    def close(self) -> None:
        self._server.close()

    def _answer(self, request: Request) -> Reply:
        if request.method == "POST" and request.path == TOKEN_PATH:
            return self._client_credentials(request)
        if request.method != "GET" or request.path != JWKS_PATH:
            return 404, {"detail": "not found"}
        with self._count_lock:
            self.jwks_requests += 1
        time.sleep(self.jwks_delay)
        return 200, self.jwks()

    def _client_credentials(self, request: Request) -> Reply:
        with self._count_lock:
            self.token_requests += 1
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        client_id = form.get("client_id", "")
        if form.get("grant_type") != "client_credentials":
            return 422, {"detail": "grant_type: must be client_credentials"}
        if client_id not in self.clients or self.clients[client_id] != form.get("client_secret"):
            return 401, {"detail": "invalid client credentials"}
        token = self.service_token(client_id)
        return 200, {"access_token": token, "token_type": "bearer", "expires_in": 900}


@pytest.fixture
def token_issuer() -> Iterator[TokenIssuer]:
    """A running JWKS server and a signer for access tokens (see `TokenIssuer`)."""
    issuer = TokenIssuer()
    try:
        yield issuer
    finally:
        issuer.close()
