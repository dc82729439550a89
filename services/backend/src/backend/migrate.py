"""`python -m backend.migrate [upgrade|downgrade] [REVISION]`: the schema, via Alembic.

Used by the Kubernetes migration Job; the service itself never creates tables. Exit codes: 0 done,
1 failed, 2 usage error (see servicekit.migrate).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from servicekit.migrate import migrate_main
from servicekit.schema import Migrations

from backend.config import Settings

MIGRATIONS = Migrations("backend:migrations")
upgrade = MIGRATIONS.upgrade
downgrade = MIGRATIONS.downgrade


def main(argv: Sequence[str] | None = None) -> int:
    return migrate_main(
        argv, service="backend", settings=Settings, upgrade=upgrade, downgrade=downgrade
    )


if __name__ == "__main__":
    sys.exit(main())
