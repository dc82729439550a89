"""The command line of a service's schema migrations: `python -m <pkg>.migrate [upgrade|downgrade]
[REVISION]`, run by the Kubernetes migration Job.

The services keep their own Alembic setup (script location, env.py); this is the part that is the
same for all: arguments, DATABASE_URL from the service's settings, JSON logging, exit codes
(0 done, 1 the migration failed, 2 usage or configuration error). No Alembic import here.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Sequence

from pydantic import ValidationError

from servicekit.logging import configure_logging
from servicekit.settings import ServiceSettings

logger = logging.getLogger("servicekit.migrate")


def migrate_main(
    argv: Sequence[str] | None,
    *,
    service: str,
    settings: Callable[[], ServiceSettings],
    upgrade: Callable[[str, str], None],
    downgrade: Callable[[str, str], None],
) -> int:
    """Parse `argv`, then upgrade (default: to head) or downgrade DATABASE_URL's schema."""
    parser = argparse.ArgumentParser(
        prog=f"python -m {service.replace('-', '_')}.migrate",
        description="Upgrade (default: to head; idempotent) or downgrade the schema.",
    )
    parser.add_argument("action", nargs="?", default="upgrade", choices=["upgrade", "downgrade"])
    parser.add_argument("revision", nargs="?", help="target revision (upgrade: default head)")
    args = parser.parse_args(argv)
    if args.action == "downgrade" and not args.revision:
        parser.error("downgrade needs a REVISION (e.g. -1 or base)")
    try:
        loaded = settings()
    except ValidationError as exc:
        parser.error(f"invalid settings: {exc}")
    configure_logging(f"{service}-migrate", loaded.log_level)
    if not loaded.database_url:
        parser.error("DATABASE_URL is not set")
    try:
        if args.action == "upgrade":
            upgrade(loaded.database_url, args.revision or "head")
        else:
            downgrade(loaded.database_url, args.revision)
    except Exception:
        logger.exception("migration failed", extra={"action": args.action})
        return 1
    logger.info("migration done", extra={"action": args.action, "revision": args.revision})
    return 0
