"""`python -m media_storage.migrate [upgrade|downgrade] [revision]`: the schema migration command.

Run by the Kubernetes migration Job (and `make run`) before the app starts. Reads DATABASE_URL.
Upgrading to `head` is idempotent. Exit codes: 0 done, 1 failed, 2 usage error.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from alembic import command
from alembic.config import Config
from servicekit.migrate import migrate_main
from servicekit.settings import ServiceSettings, sqlalchemy_url


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", "media_storage:migrations")
    # Passed as an attribute, not an ini option: URL-encoded passwords contain '%'.
    config.attributes["sqlalchemy_url"] = sqlalchemy_url(database_url)
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


def main(argv: Sequence[str] | None = None) -> int:
    return migrate_main(
        argv,
        service="media-storage",
        settings=ServiceSettings,
        upgrade=upgrade,
        downgrade=downgrade,
    )


if __name__ == "__main__":
    sys.exit(main())
