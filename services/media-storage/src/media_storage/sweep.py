"""`python -m media_storage.sweep`: remove the objects no catalog row references.

An upload PUTs its object before its row commits; a worker killed in between (or a commit that
failed) leaves an object nobody lists. Those older than MEDIA_ORPHAN_GRACE_SECONDS (so no upload
still in flight) are removed, each under its digest's lock (media_storage.catalog), so an upload
of the same content at that moment either keeps it or re-creates it. Run by the chart's CronJob.
Exit codes: 0 done, 1 failed, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence

from pydantic import ValidationError
from servicekit.logging import configure_logging

from media_storage.catalog import Catalog
from media_storage.config import Settings
from media_storage.storage import ObjectStore, make_store

logger = logging.getLogger("media_storage.sweep")


def sweep_orphans(store: ObjectStore, catalog: Catalog, grace_seconds: float) -> int:
    """Remove unreferenced objects older than the grace period; return how many."""
    removed = 0
    for digest in list(store.stored_before(time.time() - grace_seconds)):
        with catalog.transaction() as conn:
            catalog.lock_content(conn, digest)
            if catalog.references(conn, digest) == 0:
                store.remove(digest)
                removed += 1
    return removed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m media_storage.sweep",
        description="Remove stored objects that no catalog row references (after a grace period).",
    )
    parser.parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        parser.error(f"invalid settings: {exc}")
    configure_logging("media-storage-sweep", settings.log_level)
    if not settings.database_url:
        parser.error("DATABASE_URL is not set")
    try:
        store, catalog = make_store(settings), Catalog(settings.database_url)
        removed = sweep_orphans(store, catalog, settings.media_orphan_grace_seconds)
    except Exception:
        logger.exception("orphan sweep failed")
        return 1
    logger.info("orphan sweep done", extra={"removed": removed})
    return 0


if __name__ == "__main__":
    sys.exit(main())
