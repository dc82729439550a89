"""The FastAPI adapter on a small app: ops endpoints, errors, request ids, bearer users."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from harness.servers import PostgresServer
from harness.tokens import TokenIssuer
from pydantic import BaseModel
from servicekit.fastapi import CurrentUser, install
from servicekit.health import postgres_check
from servicekit.jwt import AsyncJwtVerifier


class Item(BaseModel):
    name: str
    size: int


def make_app(issuer: TokenIssuer, checks: dict[str, object] | None = None) -> FastAPI:
    app = FastAPI()
    verifier = AsyncJwtVerifier(issuer.jwks_url, issuer=issuer.issuer, audience=issuer.audience)
    install(app, readiness_checks=checks or {}, verifier=verifier)  # type: ignore[arg-type]

    @app.post("/items", status_code=201)
    async def create(item: Item) -> Item:
        return item

    @app.get("/items/{item_id}")
    async def read(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.get("/me")
    async def me(user: CurrentUser) -> dict[str, str]:
        return {"id": user.sub, "name": user.name}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("unexpected")

    return app


@pytest.fixture
async def client(token_issuer: TokenIssuer) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=make_app(token_issuer), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def test_health_and_metrics(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    await client.get("/items/7")
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert 'route="/items/{item_id}",status="200"' in metrics.text
    assert 'route="<unmatched>",status="404"' not in metrics.text
    await client.get("/nowhere")
    assert 'route="<unmatched>",status="404"' in (await client.get("/metrics")).text


@pytest.mark.parametrize(
    "forwarded",
    [{"X-Forwarded-For": "203.0.113.9"}, {"Forwarded": "for=203.0.113.9"}],
)
async def test_metrics_are_refused_through_a_proxy(
    client: httpx.AsyncClient, forwarded: dict[str, str]
) -> None:
    """The gateway adds X-Forwarded-For to every request: those came from outside."""
    answer = await client.get("/metrics", headers=forwarded)
    assert answer.status_code == 404
    assert "http_requests_total" not in answer.text


@pytest.mark.parametrize(
    ("content", "headers"),
    [
        (b"{not json", {"content-type": "application/json"}),
        (b'{"name": "x"}', {"content-type": "application/json"}),
        (b'{"name": "x", "size": "big"}', {"content-type": "application/json"}),
        (b"[1, 2]", {"content-type": "application/json"}),
        (b"name=x", {"content-type": "application/x-www-form-urlencoded"}),
        (b"\xff\xfe", {"content-type": "application/json"}),
    ],
)
async def test_malformed_bodies_get_4xx_with_a_string_detail(
    client: httpx.AsyncClient, content: bytes, headers: dict[str, str]
) -> None:
    response = await client.post("/items", content=content, headers=headers)
    assert 400 <= response.status_code < 500
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    assert detail


async def test_validation_message_names_the_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/items", json={"name": "x"})
    assert response.status_code == 422
    assert "body.size" in response.json()["detail"]


async def test_unknown_route_and_unexpected_errors_use_the_json_shape(
    client: httpx.AsyncClient,
) -> None:
    missing = await client.get("/nowhere")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Not Found"}
    boom = await client.get("/boom")
    assert boom.status_code == 500
    assert boom.json() == {"detail": "internal server error"}


async def test_request_id_is_echoed_or_generated(client: httpx.AsyncClient) -> None:
    given = await client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    generated = await client.get("/health")
    assert len(generated.headers["x-request-id"]) == 32


async def test_current_user_from_a_bearer_token(
    client: httpx.AsyncClient, token_issuer: TokenIssuer
) -> None:
    token = token_issuer.issue("user-9", "zoe")
    response = await client.get("/me", headers={"Authorization": f"Bearer {token}"})
    assert response.json() == {"id": "user-9", "name": "zoe"}


@pytest.mark.parametrize(
    ("authorization", "challenge"),
    [
        (None, "Bearer"),
        ("Basic dXNlcjpwYXNz", "Bearer"),
        ("Bearer nonsense", 'Bearer error="invalid_token"'),  # RFC 6750: a token was sent
    ],
)
async def test_missing_or_bad_tokens_get_401(
    client: httpx.AsyncClient, authorization: str | None, challenge: str
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = await client.get("/me", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == challenge
    assert isinstance(response.json()["detail"], str)


async def test_expired_token_names_the_reason(
    client: httpx.AsyncClient, token_issuer: TokenIssuer
) -> None:
    token = token_issuer.issue("u", "n", exp=1)
    response = await client.get("/me", headers={"Authorization": f"Bearer {token}"})
    assert response.json() == {"detail": "invalid token: expired"}


async def test_ready_follows_the_dependency(
    token_issuer: TokenIssuer, private_postgres: PostgresServer
) -> None:
    app = make_app(token_issuer, {"postgres": postgres_check(private_postgres.url())})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/ready")).status_code == 200
        private_postgres.stop()
        down = await client.get("/ready")
        assert down.status_code == 503
        assert down.json()["checks"]["postgres"]["status"] == "error"
        private_postgres.start()
        assert (await client.get("/ready")).status_code == 200
