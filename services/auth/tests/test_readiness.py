"""Readiness follows PostgreSQL: 503 while it is stopped, 200 again after it restarts."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg
from auth.app import create_app
from auth.config import Settings
from auth.migrate import upgrade
from fastapi import FastAPI
from harness.servers import PostgresServer

ClientFactory = Callable[[FastAPI], contextlib.AbstractAsyncContextManager[httpx.AsyncClient]]
PASSWORD = "correct horse battery staple"


async def test_readiness_fails_while_postgres_is_stopped_and_recovers(
    private_postgres: PostgresServer, redis_url: str, keys_dir: Path, asgi_client: ClientFactory
) -> None:
    with psycopg.connect(private_postgres.url(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE auth")
    database_url = private_postgres.url("auth")
    upgrade(database_url)
    app = create_app(
        Settings(database_url=database_url, redis_url=redis_url, auth_signing_keys_dir=keys_dir)
    )
    credentials = {"username": "victor", "password": PASSWORD}
    async with asgi_client(app) as client:
        assert (await client.post("/register", json=credentials)).status_code == 201
        assert (await client.get("/ready")).status_code == 200

        private_postgres.stop()
        ready = await client.get("/ready")
        assert ready.status_code == 503
        checks = ready.json()["checks"]
        assert checks["postgres"]["status"] == "error"
        assert checks["redis"]["status"] == "ok"
        assert (await client.get("/health")).status_code == 200  # liveness must not flap
        login = await client.post("/login", json=credentials)
        assert login.status_code == 503
        assert login.json() == {"detail": "database unavailable"}

        private_postgres.start()
        assert (await client.get("/ready")).status_code == 200
        assert (await client.post("/login", json=credentials)).status_code == 200
    app.state.engine.dispose()
