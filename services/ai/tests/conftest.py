"""Fixtures for the ai service: the app over ASGI, and a fake OpenAI-compatible server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager

import httpx
import pytest
from ai.app import create_app
from ai.config import Settings
from ai_fakes import FakeOpenAI, MakeClient  # tests/support: on the pytest and mypy paths
from harness.tokens import TokenIssuer


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
async def make_client(token_issuer: TokenIssuer) -> AsyncIterator[MakeClient]:
    """`await make_client(settings)`: an httpx client talking to a started app over ASGI.

    The app verifies tokens of `token_issuer` (unless the settings name a JWKS_URL) and the
    client sends backend's service token, as backend does.
    """
    opened: list[tuple[AbstractAsyncContextManager[object], httpx.AsyncClient]] = []

    async def make(settings: Settings) -> httpx.AsyncClient:
        if settings.jwks_url is None:
            settings = settings.model_copy(update={"jwks_url": token_issuer.jwks_url})
        app = create_app(settings)
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://ai.test",
            timeout=10,
            headers={"Authorization": f"Bearer {token_issuer.service_token('backend')}"},
        )
        opened.append((lifespan, http))
        return http

    yield make
    for lifespan, http in reversed(opened):
        await http.aclose()
        await lifespan.__aexit__(None, None, None)
