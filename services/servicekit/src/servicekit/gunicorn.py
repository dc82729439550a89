"""gunicorn settings shared by the WSGI services (media-storage, data-processor).

A service's config module (`gunicorn -c python:<pkg>.gunicorn_conf ...`) only names itself:

    globals().update(gunicorn_settings("media-storage", timeout=60))

gunicorn reads a config module's global names, so the returned names become its settings.
One gevent worker by default: the per-process metrics registry then sees every request, and a
connection costs a greenlet, not a thread. With threads (gthread) each connection holds a thread
while its headers arrive, so a few dozen slow clients (slowloris) left nothing for the liveness
probe; a greenlet waits for a slow client without blocking the others (the services' tests hold
slow sockets and probe /health). Environment: BIND (default 0.0.0.0:8000), WEB_CONCURRENCY
(workers, 1), GUNICORN_WORKER_CONNECTIONS (concurrent connections per worker, 1000),
GUNICORN_WORKER_TMP_DIR (/dev/shm). No gunicorn import here: these are plain values.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any


def gunicorn_settings(
    service: str, *, timeout: int = 30, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    env = os.environ if environ is None else environ
    return {
        "bind": env.get("BIND", "0.0.0.0:8000"),
        "workers": int(env.get("WEB_CONCURRENCY", "1")),
        "worker_class": "gevent",
        "worker_connections": int(env.get("GUNICORN_WORKER_CONNECTIONS", "1000")),
        "timeout": timeout,
        "graceful_timeout": 20,
        # The heartbeat file must live on a writable tmpfs (the root filesystem may be read-only).
        "worker_tmp_dir": env.get("GUNICORN_WORKER_TMP_DIR", "/dev/shm"),  # noqa: S108 (tmpfs)
        # One request per connection: the connection closes after each response, so the unread
        # rest of a refused body (413 mid-upload) is never drained, and no idle connection waits.
        "keepalive": 0,
        # Request line and headers are bounded (gunicorn's defaults, said here on purpose).
        "limit_request_line": 4094,
        "limit_request_fields": 100,
        "limit_request_field_size": 8190,
        "accesslog": None,  # the app writes one JSON access line per request
        "errorlog": "-",
        # No runtime control socket: nothing uses it, and it would need a writable home directory.
        "control_socket_disable": True,
        "logconfig_dict": _json_logging(service),
    }


def _json_logging(service: str) -> dict[str, Any]:
    """gunicorn's own lines (master and workers) as JSON too, like everything the app logs."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "servicekit.logging.JsonFormatter", "service": service}},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stdout",
            }
        },
        # Only the master's own logger: in workers, configure_logging routes everything to root.
        "root": {"level": "INFO", "handlers": []},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["console"], "propagate": False}
        },
    }
