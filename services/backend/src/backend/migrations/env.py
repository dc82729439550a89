"""Alembic environment: online migrations only, on the blocking engine for DATABASE_URL (PostgreSQL,
or SQLite for tests), one at a time per PostgreSQL database (advisory lock)."""

from servicekit.schema import run_online

from backend.database import create_sync_engine
from backend.models import Base

# Any constant shared by every backend replica; serialises concurrently started migration Jobs.
run_online(Base.metadata, lock_id=0x6261636B656E64, engine_for=create_sync_engine)  # "backend"
