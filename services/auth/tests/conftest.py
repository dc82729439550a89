"""Fixtures: a migrated database, signing keys on disk, the app in-process and on a real port."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from auth.app import create_app
from auth.config import Settings
from auth.keys import private_key_pem
from auth.migrate import upgrade
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from harness.appservers import AsgiServer

PASSWORD = "correct horse battery staple"


def _write_key(directory: Path, kid: str) -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.generate()
    (directory / f"{kid}.pem").write_bytes(private_key_pem(key))
    return key


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    """A signing-keys directory (like the mounted Secret) holding one key, kid `2026-01-01`."""
    directory = tmp_path / "signing-keys"
    directory.mkdir()
    _write_key(directory, "2026-01-01")
    return directory


@pytest.fixture
def write_key() -> Callable[[Path, str], Ed25519PrivateKey]:
    """`write_key(directory, kid)`: a new Ed25519 PEM file named after the kid."""
    return _write_key


@pytest.fixture
def migrated_database_url(database_url: str) -> str:
    upgrade(database_url)
    return database_url


@pytest.fixture
def make_settings(
    migrated_database_url: str, redis_url: str, keys_dir: Path
) -> Callable[..., Settings]:
    """Settings for a test; keyword arguments override fields (generous limits by default)."""

    def make(**overrides: Any) -> Settings:
        fields: dict[str, Any] = {
            "database_url": migrated_database_url,
            "redis_url": redis_url,
            "auth_signing_keys_dir": keys_dir,
            "auth_login_limit_per_ip": 1000,
            "auth_login_limit_per_account": 1000,
            "auth_register_limit_per_ip": 1000,
            "auth_register_limit_per_account": 1000,
            **overrides,
        }
        return Settings(**fields)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def app(settings: Settings) -> Iterator[FastAPI]:
    app = create_app(settings)
    yield app
    app.state.engine.dispose()


ClientFactory = Callable[[FastAPI], contextlib.AbstractAsyncContextManager[httpx.AsyncClient]]
Server = Callable[[FastAPI], contextlib.AbstractContextManager[str]]
Login = Callable[..., Awaitable[dict[str, Any]]]


@contextlib.asynccontextmanager
async def _asgi_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://auth") as client:
        yield client


@pytest.fixture
def asgi_client() -> ClientFactory:
    """`async with asgi_client(app) as client:` an in-process client of another app."""
    return _asgi_client


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with _asgi_client(app) as client:
        yield client


@contextlib.contextmanager
def _serve(app: FastAPI) -> Iterator[str]:
    """Run `app` under a real uvicorn server on a loopback port; yields its base URL."""
    with AsgiServer(lambda: app, lifespan="off", start_timeout=10) as server:
        yield server.url


@pytest.fixture
def serve() -> Server:
    """`with serve(app) as base_url:` the app under a real uvicorn server."""
    return _serve


@pytest.fixture
def live_url(app: FastAPI) -> Iterator[str]:
    with _serve(app) as url:
        yield url


async def _register_and_login(
    client: httpx.AsyncClient, username: str, password: str = PASSWORD
) -> dict[str, Any]:
    created = await client.post("/register", json={"username": username, "password": password})
    assert created.status_code == 201, created.text
    response = await client.post("/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return tokens


@pytest.fixture
def register_and_login() -> Login:
    """`await register_and_login(client, "alice")` -> the login response's JSON."""
    return _register_and_login
