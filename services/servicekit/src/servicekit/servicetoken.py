"""Service tokens: a service authenticates to another with a token auth signed for it.

OAuth 2.0 client credentials (RFC 6749 section 4.4): `POST <token_url>` with
`grant_type=client_credentials`, `client_id` and `client_secret` (form-encoded) answers
`{"access_token", "token_type", "expires_in"}`. `ServiceTokens.get()` returns a cached token
until shortly before it expires; one fetch at a time (concurrent callers wait for it), a
timeout on every call. `invalidate(token)` drops a token the other side refused.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
from pydantic import SecretStr

REFRESH_MARGIN_SECONDS = 30.0  # a token is renewed this long before it expires


class ServiceTokenError(Exception):
    """No token: auth is unreachable, refused the credentials, or answered nonsense."""


class ServiceTokens:
    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: SecretStr,
        *,
        timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = token_url
        self._client_id = client_id
        self._secret = client_secret
        self._http = httpx.AsyncClient(timeout=timeout, transport=transport)
        self._clock = clock
        self._token: str | None = None
        self._renew_at = 0.0
        self._lock = asyncio.Lock()

    async def get(self) -> str:
        async with self._lock:  # single flight: the others wait for the fetch in progress
            if self._token is None or self._clock() >= self._renew_at:
                self._token, lifetime = await self._fetch()
                self._renew_at = self._clock() + max(0.0, lifetime - REFRESH_MARGIN_SECONDS)
            return self._token

    def invalidate(self, token: str) -> None:
        if self._token == token:
            self._token = None

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _fetch(self) -> tuple[str, float]:
        form = {
            "grant_type": "client_credentials",
            "client_id": self._client_id,
            "client_secret": self._secret.get_secret_value(),
        }
        try:
            answer = await self._http.post(self._url, data=form)
        except httpx.HTTPError as exc:
            raise ServiceTokenError(f"token endpoint unreachable ({type(exc).__name__})") from exc
        if answer.status_code != 200:
            raise ServiceTokenError(f"token endpoint answered HTTP {answer.status_code}")
        try:
            body = answer.json()
            return str(body["access_token"]), float(body["expires_in"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ServiceTokenError("token endpoint's answer is malformed") from exc
