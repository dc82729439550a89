"""`python -m auth.migrate [upgrade|downgrade] [revision]`: the schema migration command.

Run by the Kubernetes migration Job before the app starts. Reads DATABASE_URL. Upgrading to
`head` is idempotent: an up-to-date database is left alone. Exit codes: 0 done, 1 failed,
2 usage error.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from alembic import command
from alembic.config import Config
from servicekit.logging import configure_logging
from servicekit.settings import ServiceSettings, sqlalchemy_url

logger = logging.getLogger("auth.migrate")


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", "auth:migrations")
    # Passed as an attribute, not an ini option: URL-encoded passwords contain '%'.
    config.attributes["sqlalchemy_url"] = sqlalchemy_url(database_url)
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m auth.migrate", description=__doc__)
    parser.add_argument("action", nargs="?", default="upgrade", choices=["upgrade", "downgrade"])
    parser.add_argument("revision", nargs="?", help="target (default: head for upgrade)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = ServiceSettings()
    configure_logging("auth-migrate", settings.log_level)
    if not settings.database_url:
        print("DATABASE_URL is not set", file=sys.stderr)
        return 2
    if args.action == "downgrade" and not args.revision:
        print("downgrade needs a revision (e.g. base or -1)", file=sys.stderr)
        return 2
    try:
        if args.action == "upgrade":
            upgrade(settings.database_url, args.revision or "head")
        else:
            downgrade(settings.database_url, args.revision)
    except Exception:
        logger.exception("migration failed")
        return 1
    logger.info("migration done", extra={"action": args.action, "revision": args.revision})
    return 0


if __name__ == "__main__":
    sys.exit(main())
