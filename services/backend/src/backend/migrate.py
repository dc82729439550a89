"""`python -m backend.migrate [upgrade|downgrade] [REVISION]`: the schema, via Alembic.

Used by the Kubernetes migration Job; the service itself never creates tables. Exit codes: 0 done,
1 failed, 2 usage error (see servicekit.migrate).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.resources import files

from alembic import command
from alembic.config import Config
from servicekit.migrate import migrate_main

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


def main(argv: Sequence[str] | None = None) -> int:
    return migrate_main(
        argv, service="backend", settings=Settings, upgrade=upgrade, downgrade=downgrade
    )


if __name__ == "__main__":
    sys.exit(main())
