"""Alembic environment: online migrations only, one at a time per database (advisory lock)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text

from auth.models import Base

# Any constant shared by every auth replica; serialises concurrently started migration Jobs.
_LOCK_ID = 0x61757468  # "auth"


def run_migrations() -> None:
    url = context.config.attributes["sqlalchemy_url"]
    engine = create_engine(url, connect_args={"connect_timeout": 10})
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, target_metadata=Base.metadata)
            with context.begin_transaction():
                connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
                context.run_migrations()
    finally:
        engine.dispose()


run_migrations()
