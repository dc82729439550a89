"""Who may ask ai: services with a service token (backend), signed-in users; nobody anonymous."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from ai.app import create_app
from ai.config import Settings
from harness.tokens import TokenIssuer

QUESTION = {"messages": [{"role": "user", "content": "Say something about the sea."}]}


def _settings(token_issuer: TokenIssuer, redis_url: str, **overrides: Any) -> Settings:
    return Settings(
        redis_url=redis_url,
        jwks_url=token_issuer.jwks_url,
        jwt_issuer=token_issuer.issuer,
        jwt_audience=token_issuer.audience,
        **overrides,
    )


async def _post(settings: Settings, headers: dict[str, str], times: int = 1) -> list[int]:
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://ai") as client,
    ):
        return [
            (await client.post("/v1/reply", json=QUESTION, headers=headers)).status_code
            for _ in range(times)
        ]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic YWRtaW46YWRtaW4="}],
)
async def test_anonymous_callers_get_401(
    token_issuer: TokenIssuer, redis_url: str, headers: dict[str, str]
) -> None:
    assert await _post(_settings(token_issuer, redis_url), headers) == [401]


async def test_a_token_for_another_audience_is_refused(
    token_issuer: TokenIssuer, redis_url: str
) -> None:
    stranger = token_issuer.bearer("backend", "backend", aud="somebody-else")
    assert await _post(_settings(token_issuer, redis_url), stranger) == [401]


async def test_a_service_token_gets_the_service_budget(
    token_issuer: TokenIssuer, redis_url: str
) -> None:
    settings = _settings(token_issuer, redis_url, ai_rate_limit=3, ai_user_rate_limit=1)
    service = {"Authorization": f"Bearer {token_issuer.service_token('backend')}"}
    assert await _post(settings, service, times=4) == [200, 200, 200, 429]


async def test_a_user_gets_a_small_budget_of_their_own(
    token_issuer: TokenIssuer, redis_url: str
) -> None:
    """Users may ask directly, but not spend the operator's money like a service would."""
    settings = _settings(token_issuer, redis_url, ai_rate_limit=100, ai_user_rate_limit=2)
    alice = token_issuer.bearer(str(uuid.uuid4()), "alice")
    bob = token_issuer.bearer(str(uuid.uuid4()), "bob")
    assert await _post(settings, alice, times=3) == [200, 200, 429]
    assert await _post(settings, bob) == [200]


async def test_a_user_token_claiming_to_be_a_client_is_still_a_user(
    token_issuer: TokenIssuer, redis_url: str
) -> None:
    """`client_id` counts only in a service token (the service audience), not in a user's."""
    settings = _settings(token_issuer, redis_url, ai_rate_limit=100, ai_user_rate_limit=1)
    sneaky = token_issuer.bearer(str(uuid.uuid4()), "eve", client_id="backend")
    assert await _post(settings, sneaky, times=2) == [200, 429]
