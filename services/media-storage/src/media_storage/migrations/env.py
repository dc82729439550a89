"""Alembic environment: online migrations only, one at a time per database (advisory lock)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text

# Any constant shared by every media-storage replica; serialises concurrently started Jobs.
_LOCK_ID = 0x6D65646961  # "media"


def run_migrations() -> None:
    url = context.config.attributes["sqlalchemy_url"]
    engine = create_engine(url, connect_args={"connect_timeout": 10})
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, target_metadata=None)
            with context.begin_transaction():
                connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
                context.run_migrations()
    finally:
        engine.dispose()


run_migrations()
