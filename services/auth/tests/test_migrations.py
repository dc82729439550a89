"""Alembic migrations against a real PostgreSQL: up, down, idempotent, and matching the models."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from auth.app import create_app
from auth.config import Settings
from auth.migrate import downgrade, main, upgrade
from auth.models import Base
from fastapi import FastAPI
from servicekit.settings import sqlalchemy_url
from sqlalchemy import create_engine

ClientFactory = Callable[[FastAPI], contextlib.AbstractAsyncContextManager[httpx.AsyncClient]]


def tables(database_url: str) -> set[str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
    return {row[0] for row in rows}


def revision(database_url: str) -> str | None:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return row[0] if row else None


def test_upgrade_head_creates_the_schema_and_is_idempotent(database_url: str) -> None:
    assert tables(database_url) == set()
    upgrade(database_url)
    assert tables(database_url) == {"alembic_version", "users", "refresh_tokens"}
    assert revision(database_url) == "0002"
    upgrade(database_url)  # a second run (a re-run Job) changes nothing and does not fail
    assert revision(database_url) == "0002"


def test_downgrade_to_base_removes_everything_and_upgrade_restores_it(database_url: str) -> None:
    upgrade(database_url)
    downgrade(database_url, "base")
    assert tables(database_url) == {"alembic_version"}
    assert revision(database_url) is None
    upgrade(database_url)
    assert {"users", "refresh_tokens"} <= tables(database_url)


def test_the_migrations_match_the_models(database_url: str) -> None:
    upgrade(database_url)
    engine = create_engine(sqlalchemy_url(database_url))
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert differences == []


def test_unique_username_index_ignores_case(database_url: str) -> None:
    upgrade(database_url)
    insert = "INSERT INTO users (id, username, password_hash) VALUES (gen_random_uuid(), %s, 'x')"
    with psycopg.connect(database_url) as conn:
        conn.execute(insert, ("Alice",))
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(insert, ("alice",))


def test_migrate_command_for_the_kubernetes_job(database_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": database_url}
    for _ in range(2):  # idempotent
        result = subprocess.run(
            [sys.executable, "-m", "auth.migrate"], env=env, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr + result.stdout
    assert revision(database_url) == "0002"
    assert '"message": "migration done"' in result.stdout


def test_migrate_usage_errors_exit_2(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    for argv, words in (([], "DATABASE_URL"), (["downgrade"], "REVISION"), (["sideways"], "")):
        if argv != []:
            monkeypatch.setenv("DATABASE_URL", database_url)
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2
        assert words in capsys.readouterr().err


def test_migrate_reports_failure_with_exit_1(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    assert main([]) == 1


async def test_the_app_never_creates_tables(
    database_url: str, redis_url: str, keys_dir: Path, asgi_client: ClientFactory
) -> None:
    app = create_app(
        Settings(database_url=database_url, redis_url=redis_url, auth_signing_keys_dir=keys_dir)
    )
    async with asgi_client(app) as client:
        response = await client.post("/register", json={"username": "alice", "password": "x" * 8})
    app.state.engine.dispose()
    assert response.status_code >= 500
    assert tables(database_url) == set()
