"""Fixtures for the backend: a real ai service on loopback, tokens, a started backend app."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import ai.app
import ai.config
import httpx
import pytest
from backend.app import create_app
from backend.config import Settings
from backend.migrate import upgrade
from backend.runtime import Runtime
from backend_fakes import Backend, MakeBackend, SilentServer
from harness.appservers import AsgiServer
from harness.servers import free_port
from harness.tokens import SERVICE_SECRET, TokenIssuer


def _ai_app_factory(redis_url: str, token_issuer: TokenIssuer) -> Any:
    settings = ai.config.Settings(redis_url=redis_url, jwks_url=token_issuer.jwks_url)
    return lambda: ai.app.create_app(settings)


@pytest.fixture
def ai_server(redis_url: str, token_issuer: TokenIssuer) -> Iterator[AsgiServer]:
    """The real ai service (local provider) under uvicorn on a free loopback port; it answers
    only callers with a token of `token_issuer` (backend gets one from its /token)."""
    server = AsgiServer(_ai_app_factory(redis_url, token_issuer), free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def stopped_ai(redis_url: str, token_issuer: TokenIssuer) -> Iterator[AsgiServer]:
    """The ai service's address with nothing listening yet; `.start()` brings it up there."""
    server = AsgiServer(_ai_app_factory(redis_url, token_issuer), free_port())
    yield server
    server.stop()


@pytest.fixture
def silent_ai() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


@pytest.fixture
def alice(token_issuer: TokenIssuer) -> dict[str, str]:
    return token_issuer.bearer(str(uuid.uuid4()), "alice")


@pytest.fixture
def bob(token_issuer: TokenIssuer) -> dict[str, str]:
    return token_issuer.bearer(str(uuid.uuid4()), "bob")


@pytest.fixture
async def make_backend(
    database_url: str, redis_url: str, token_issuer: TokenIssuer
) -> AsyncIterator[MakeBackend]:
    """`await make_backend(ai_url=..., **settings)`: a migrated, started backend.

    Defaults: the test's PostgreSQL database and Redis, fast ai retries, and the background
    drainer and retrier off (tests that want them turn them on).
    """
    opened: list[Backend] = []
    migrated: set[str] = set()

    async def make(**overrides: Any) -> Backend:
        values: dict[str, Any] = {
            "database_url": database_url,
            "redis_url": redis_url,
            "jwks_url": token_issuer.jwks_url,
            "auth_url": token_issuer.url,
            "ai_client_secret": SERVICE_SECRET,
            "ai_timeout_seconds": 3.0,
            "ai_connect_timeout_seconds": 1.0,
            "ai_attempts": 2,
            "ai_backoff_seconds": 0.05,
            "ai_backoff_max_seconds": 0.1,
            "outbox_drain_interval_seconds": 0,
            "reply_retry_interval_seconds": 0,
            **overrides,
        }
        settings = Settings(**values)
        if settings.database_url not in migrated:
            upgrade(settings.database_url)
            migrated.add(settings.database_url)
        app = create_app(settings)
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://backend.test", timeout=30
        )
        runtime: Runtime = app.state.runtime
        backend = Backend(http=http, runtime=runtime, settings=settings, lifespan=lifespan)
        opened.append(backend)
        return backend

    yield make
    for backend in reversed(opened):
        await backend.aclose()
