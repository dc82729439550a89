"""Database URLs and engines: PostgreSQL through psycopg, or an embedded SQLite file."""

from __future__ import annotations

from typing import Any

from servicekit.events import telemetry_if_wanted
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

_POSTGRES_SCHEMES = {"postgres", "postgresql", "postgresql+psycopg", "postgresql+psycopg2"}
_SQLITE_SCHEMES = {"sqlite", "sqlite+pysqlite", "sqlite+aiosqlite"}


class DatabaseURLError(ValueError):
    pass


def _parse(url: str) -> URL:
    # `postgres://` is common in the wild but not a SQLAlchemy dialect name.
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise DatabaseURLError("DATABASE_URL is not a valid database URL") from exc
    if parsed.drivername not in _POSTGRES_SCHEMES | _SQLITE_SCHEMES:
        raise DatabaseURLError(
            f"DATABASE_URL scheme {parsed.drivername!r} is not supported; "
            "use postgresql://... or sqlite:///path"
        )
    return parsed


def is_sqlite(url: str) -> bool:
    return _parse(url).drivername in _SQLITE_SCHEMES


def sync_url(url: str) -> URL:
    """The URL for blocking code (migrations): psycopg or the standard sqlite3 module."""
    parsed = _parse(url)
    driver = "sqlite" if parsed.drivername in _SQLITE_SCHEMES else "postgresql+psycopg"
    return parsed.set(drivername=driver)


def async_url(url: str) -> URL:
    """The URL for the service: psycopg's asyncio mode, or aiosqlite."""
    parsed = _parse(url)
    driver = "sqlite+aiosqlite" if parsed.drivername in _SQLITE_SCHEMES else "postgresql+psycopg"
    return parsed.set(drivername=driver)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def create_sync_engine(url: str) -> Engine:
    engine = create_engine(sync_url(url), pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def create_service_engine(url: str, statement_timeout_ms: int = 10_000) -> AsyncEngine:
    target = async_url(url)
    if target.drivername.startswith("sqlite"):
        engine = create_async_engine(target, connect_args={"timeout": 5})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_async_engine(
        target,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=10,
        pool_timeout=5,
        connect_args={
            "connect_timeout": 5,
            "options": f"-c statement_timeout={statement_timeout_ms}",
        },
    )
    if telemetry := telemetry_if_wanted():  # OTEL_EXPORTER_OTLP_ENDPOINT set: SQL client spans
        telemetry.trace_engine(engine)
    return engine


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
