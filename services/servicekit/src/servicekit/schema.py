"""The Alembic side of a service's schema migrations, the same for every service that has one
(auth, backend, media-storage): commands against DATABASE_URL and the online-only environment.

Imports Alembic, so only services that depend on it import this module (servicekit.migrate,
the command line, does not).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from alembic import command, context
from alembic.config import Config
from sqlalchemy import Engine, MetaData, create_engine, text

from servicekit.settings import sqlalchemy_url

# The key of Alembic's config attributes holding DATABASE_URL. Not an ini option: a URL-encoded
# password's '%' would be read as interpolation there.
_URL_ATTRIBUTE = "database_url"


@dataclass(frozen=True)
class Migrations:
    """A service's Alembic scripts, e.g. Migrations("auth:migrations")."""

    script_location: str

    def config(self, database_url: str) -> Config:
        config = Config()
        config.set_main_option("script_location", self.script_location)
        config.attributes[_URL_ATTRIBUTE] = database_url
        return config

    def upgrade(self, database_url: str, revision: str = "head") -> None:
        command.upgrade(self.config(database_url), revision)

    def downgrade(self, database_url: str, revision: str) -> None:
        command.downgrade(self.config(database_url), revision)


def postgres_engine(database_url: str) -> Engine:
    return create_engine(sqlalchemy_url(database_url), connect_args={"connect_timeout": 10})


def run_online(
    target_metadata: MetaData | None,
    *,
    lock_id: int,
    engine_for: Callable[[str], Engine] = postgres_engine,
) -> None:
    """The body of a service's migrations/env.py: migrate the database of DATABASE_URL.

    On PostgreSQL, a transaction-scoped advisory lock on `lock_id` (a constant of the service)
    makes concurrently started migration Jobs run one after the other instead of racing.
    """
    if context.is_offline_mode():
        raise RuntimeError("offline (SQL script) migrations are not supported: run them online")
    url = context.config.attributes.get(_URL_ATTRIBUTE)
    if not url:
        raise RuntimeError(f"no database URL in Alembic's config attribute {_URL_ATTRIBUTE!r}")
    engine = engine_for(str(url))
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                # SQLite (backend's tests) cannot ALTER most things: batch mode rebuilds the table.
                render_as_batch=connection.dialect.name == "sqlite",
            )
            with context.begin_transaction():
                if connection.dialect.name == "postgresql":
                    connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": lock_id})
                context.run_migrations()
    finally:
        engine.dispose()
