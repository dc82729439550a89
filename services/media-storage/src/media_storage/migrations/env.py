"""Alembic environment: online migrations only, one at a time per database (advisory lock)."""

from servicekit.schema import run_online

# Any constant shared by every media-storage replica; serialises concurrently started Jobs.
run_online(None, lock_id=0x6D65646961)  # "media"
