"""The reply cache is no oracle: nobody learns from a cache hit what somebody else asked.
Against the app under a real uvicorn, with the harness's Redis and token issuer."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from ai.app import create_app
from ai.config import Settings
from harness.appservers import AsgiServer
from harness.tokens import TokenIssuer

SECRET = {"messages": [{"role": "user", "content": "my bank PIN is 4711"}]}


@pytest.fixture
def ai_url(token_issuer: TokenIssuer, redis_url: str) -> Iterator[str]:
    settings = Settings(
        redis_url=redis_url,
        jwks_url=token_issuer.jwks_url,
        jwt_issuer=token_issuer.issuer,
        jwt_audience=token_issuer.audience,
    )
    with AsgiServer(lambda: create_app(settings), lifespan="on") as server:
        yield server.url


def _cached(url: str, headers: dict[str, str]) -> bool:
    response = httpx.post(f"{url}/v1/reply", json=SECRET, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    cached: bool = response.json()["cached"]
    return cached


def _service(token_issuer: TokenIssuer, client_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_issuer.service_token(client_id)}"}


def test_a_user_learns_nothing_from_the_cache(ai_url: str, token_issuer: TokenIssuer) -> None:
    alice = token_issuer.bearer(str(uuid.uuid4()), "alice")
    bob = token_issuer.bearer(str(uuid.uuid4()), "bob")
    assert _cached(ai_url, alice) is False
    assert _cached(ai_url, bob) is False, "bob's guess of alice's message was a cache hit"
    assert _cached(ai_url, alice) is False, "users are never answered from the cache"
    # What backend asked is not shown to a user either.
    assert _cached(ai_url, _service(token_issuer, "backend")) is False
    assert _cached(ai_url, bob) is False


def test_each_service_has_a_cache_of_its_own(ai_url: str, token_issuer: TokenIssuer) -> None:
    backend = _service(token_issuer, "backend")
    assert [_cached(ai_url, backend) for _ in range(2)] == [False, True]
    assert _cached(ai_url, _service(token_issuer, "reports")) is False
