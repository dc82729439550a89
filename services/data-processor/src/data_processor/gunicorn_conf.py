"""gunicorn settings: `gunicorn -c python:data_processor.gunicorn_conf data_processor.wsgi`.

One worker with threads by default so the per-process metrics registry sees every request;
WEB_CONCURRENCY adds workers.
"""

import os

bind = os.environ.get("BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
timeout = 30
graceful_timeout = 20
# The heartbeat file must live on a writable tmpfs (the root filesystem may be read-only).
worker_tmp_dir = os.environ.get("GUNICORN_WORKER_TMP_DIR", "/dev/shm")  # noqa: S108 (tmpfs by design)
accesslog = None  # the app writes one JSON access line per request
errorlog = "-"
# No runtime control socket: nothing uses it, and it would need a writable home directory.
control_socket_disable = True
# gunicorn's own lines (master and workers) as JSON too, like everything the app logs.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "servicekit.logging.JsonFormatter", "service": "data-processor"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stdout",
        }
    },
    # Only the master's own logger: in workers, configure_logging routes everything to root.
    "root": {"level": "INFO", "handlers": []},
    "loggers": {"gunicorn.error": {"level": "INFO", "handlers": ["console"], "propagate": False}},
}
