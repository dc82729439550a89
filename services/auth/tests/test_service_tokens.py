"""Client credentials: a service (backend) gets a short token for another service (ai)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from auth.app import create_app
from auth.config import Settings
from pydantic import SecretStr
from servicekit.jwt import AsyncJwtVerifier, TokenError
from servicekit.servicetoken import ServiceTokenError, ServiceTokens

SECRET = "s3rvice-secret-for-tests"


@pytest.fixture
def service_app(make_settings: Callable[..., Settings]) -> httpx.ASGITransport:
    app = create_app(make_settings(auth_service_clients={"backend": SECRET}))
    return httpx.ASGITransport(app=app)


def _form(secret: str = SECRET, **overrides: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_id": "backend",
        "client_secret": secret,
        **overrides,
    }


async def test_a_known_client_gets_a_service_token_only_ai_accepts(
    service_app: httpx.ASGITransport,
) -> None:
    async with httpx.AsyncClient(transport=service_app, base_url="http://auth") as client:
        answer = await client.post("/token", data=_form())
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["token_type"], body["expires_in"]) == ("bearer", 300)
        jwks = (await client.get("/.well-known/jwks.json")).json()
    ai = AsyncJwtVerifier(static_jwks=jwks, issuer="chat-auth", audience=["chat", "chat-services"])
    verified = await ai.verify(body["access_token"])
    assert (verified.sub, verified.claims["client_id"]) == ("backend", "backend")
    # A user-facing service (audience "chat" only) refuses it: it is not a user's token.
    user_api = AsyncJwtVerifier(static_jwks=jwks, issuer="chat-auth", audience="chat")
    with pytest.raises(TokenError) as refused:
        await user_api.verify(body["access_token"])
    assert refused.value.reason == "invalid_audience"


@pytest.mark.parametrize(
    ("form", "status"),
    [
        (_form("wrong-secret"), 401),
        (_form(client_id="mallory"), 401),
        (_form(grant_type="password"), 422),
        ({"grant_type": "client_credentials", "client_id": "backend"}, 422),
    ],
)
async def test_wrong_credentials_get_no_token(
    service_app: httpx.ASGITransport, form: dict[str, str], status: int
) -> None:
    async with httpx.AsyncClient(transport=service_app, base_url="http://auth") as client:
        answer = await client.post("/token", data=form)
    assert answer.status_code == status, answer.text
    assert "access_token" not in answer.json()


async def test_service_tokens_client_caches_and_renews(service_app: httpx.ASGITransport) -> None:
    now = [1000.0]
    tokens = ServiceTokens(
        "http://auth/token",
        "backend",
        SecretStr(SECRET),
        transport=service_app,
        clock=lambda: now[0],
    )
    first = await tokens.get()
    assert await tokens.get() == first  # cached
    now[0] += 300 - 29  # within the renewal margin before expiry
    renewed = await tokens.get()
    assert renewed != first
    tokens.invalidate(renewed)
    assert await tokens.get() != renewed
    await tokens.aclose()


async def test_service_tokens_client_reports_refusal(service_app: httpx.ASGITransport) -> None:
    tokens = ServiceTokens("http://auth/token", "backend", SecretStr("nope"), transport=service_app)
    with pytest.raises(ServiceTokenError, match="HTTP 401"):
        await tokens.get()
    await tokens.aclose()
