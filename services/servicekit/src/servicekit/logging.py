"""JSON structured logging (one object per line) carrying the current request id.

The request id lives in a contextvar, so it follows the request through threads started with
`contextvars.copy_context()` (FastAPI's threadpool does this) and through asyncio tasks.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import re
import sys
import uuid
from typing import Any, TextIO

REQUEST_ID_HEADER = "X-Request-ID"

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)

# Incoming ids are echoed into logs and headers: accept only a short, harmless alphabet.
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

# Attributes every LogRecord has; anything else was passed through `extra=` and is logged.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's ANSI-coloured copy of the message
}


def new_request_id() -> str:
    return uuid.uuid4().hex


def request_id_from_header(value: str | None) -> str:
    """The caller's id when it is well-formed, otherwise a fresh one."""
    if value and _VALID_REQUEST_ID.match(value):
        return value
    return new_request_id()


def current_request_id() -> str | None:
    return request_id_var.get()


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: time, level, logger, message, request id, extras."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id is not None:
            entry["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class _JsonHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler `configure_logging` owns."""


def configure_logging(service: str, level: str = "INFO", stream: TextIO | None = None) -> None:
    """Route every logger (including uvicorn's) through one JSON handler on stdout.

    Calling it again replaces the handler it installed before; other handlers (pytest's log
    capture, for one) are left alone.
    """
    handler = _JsonHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, _JsonHandler)] + [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "gunicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # uvicorn's own access log would duplicate servicekit's request log line.
    logging.getLogger("uvicorn.access").disabled = True
