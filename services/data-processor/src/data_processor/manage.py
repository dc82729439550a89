"""`python -m data_processor.manage <command>`: Django's manage.py, logging as JSON."""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "data_processor.settings")
    from django.conf import settings
    from django.core.management import execute_from_command_line
    from servicekit.logging import configure_logging

    configure_logging("data-processor", settings.CONFIG.log_level)
    execute_from_command_line(argv or sys.argv)


if __name__ == "__main__":
    main()
