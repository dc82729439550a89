"""`python -m backend.migrate [upgrade|downgrade|current] [REVISION]`: the schema, via Alembic.

Used by the Kubernetes migration Job; the service itself never creates tables.
"""

from __future__ import annotations

import argparse
import sys
from importlib.resources import files

from alembic import command
from alembic.config import Config

from backend.config import Settings


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(files("backend") / "migrations"))
    # Kept out of the ini options: a URL's `%` would be read as interpolation there.
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend.migrate", description=__doc__)
    parser.add_argument("action", nargs="?", default="upgrade", choices=["upgrade", "downgrade"])
    parser.add_argument("revision", nargs="?", help="target revision (upgrade: default head)")
    args = parser.parse_args(argv)
    url = Settings().database_url
    if args.action == "upgrade":
        upgrade(url, args.revision or "head")
    else:
        if not args.revision:
            parser.error("downgrade needs a REVISION (e.g. -1 or base)")
        downgrade(url, args.revision)
    return 0


if __name__ == "__main__":
    sys.exit(main())
