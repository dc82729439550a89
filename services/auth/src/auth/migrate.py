"""`python -m auth.migrate [upgrade|downgrade] [revision]`: the schema migration command.

Run by the Kubernetes migration Job before the app starts. Reads DATABASE_URL. Upgrading to
`head` is idempotent: an up-to-date database is left alone. Exit codes: 0 done, 1 failed,
2 usage error.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from servicekit.migrate import migrate_main
from servicekit.schema import Migrations
from servicekit.settings import ServiceSettings

MIGRATIONS = Migrations("auth:migrations")
upgrade = MIGRATIONS.upgrade
downgrade = MIGRATIONS.downgrade


def main(argv: Sequence[str] | None = None) -> int:
    return migrate_main(
        argv, service="auth", settings=ServiceSettings, upgrade=upgrade, downgrade=downgrade
    )


if __name__ == "__main__":
    sys.exit(main())
