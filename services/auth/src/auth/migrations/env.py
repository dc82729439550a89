"""Alembic environment: online migrations only, one at a time per database (advisory lock)."""

from servicekit.schema import run_online

from auth.models import Base

# Any constant shared by every auth replica; serialises concurrently started migration Jobs.
run_online(Base.metadata, lock_id=0x61757468)  # "auth"
