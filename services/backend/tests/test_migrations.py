"""Alembic migrations on PostgreSQL and SQLite: up, down, up, and in step with the models."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from backend.database import create_sync_engine
from backend.migrate import downgrade, upgrade
from backend.migrate import main as migrate_main
from backend.models import Base
from sqlalchemy import inspect

TABLES = {"conversations", "messages", "outbox", "idempotency_keys", "alembic_version"}


@pytest.fixture(params=["postgresql", "sqlite"])
def any_database(request: pytest.FixtureRequest, database_url: str, tmp_path: Path) -> str:
    return database_url if request.param == "postgresql" else f"sqlite:///{tmp_path}/m.db"


def _tables(url: str) -> set[str]:
    engine = create_sync_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(any_database: str) -> None:
    upgrade(any_database)
    assert _tables(any_database) == TABLES
    downgrade(any_database, "base")
    assert _tables(any_database) == {"alembic_version"}
    upgrade(any_database)
    assert _tables(any_database) == TABLES


def test_migrations_match_the_models(any_database: str) -> None:
    upgrade(any_database)
    engine = create_sync_engine(any_database)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_migrate_command(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    env = {**os.environ, "DATABASE_URL": database_url}
    run = subprocess.run(
        [sys.executable, "-m", "backend.migrate"], env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert _tables(database_url) == TABLES

    with pytest.raises(SystemExit) as usage:
        migrate_main(["downgrade"])
    assert usage.value.code == 2
    assert "REVISION" in capsys.readouterr().err


def test_unsupported_database_url_is_named() -> None:
    from backend.config import Settings
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="DATABASE_URL scheme 'mysql'"):
        Settings(database_url="mysql://x@y/z")
