"""`manage migrate`, its report as JSON log lines like every other log of the platform.

Django's migrate writes plain text ("Applying ... OK") to stdout; the migration Job's log and the
local stack's `data-processor-migrate.log` would be the only non-JSON lines. Same command line,
same options: only where the report goes changes. A caller's own `stdout=` (call_command in
tests) is kept.
"""

from __future__ import annotations

import io
import logging
from typing import Any

from django.core.management.commands.migrate import Command as DjangoMigrate

logger = logging.getLogger("data_processor.migrate")


class LogLines(io.TextIOBase):
    """A text stream that logs each complete, non-blank line it is given."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level
        self.pending = ""

    def write(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            if line.strip():
                logger.log(self.level, line.strip())
        return len(text)

    def flush(self) -> None:
        if self.pending.strip():
            logger.log(self.level, self.pending.strip())
        self.pending = ""


class Command(DjangoMigrate):
    def execute(self, *args: Any, **options: Any) -> str | None:
        if options.get("stdout") is None:
            options.update(stdout=LogLines(logging.INFO), no_color=True)
        if options.get("stderr") is None:
            options["stderr"] = LogLines(logging.ERROR)
        try:
            result: str | None = super().execute(*args, **options)
        finally:
            for stream in (options["stdout"], options["stderr"]):
                stream.flush()
        return result
