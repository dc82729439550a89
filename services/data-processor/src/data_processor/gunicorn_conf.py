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
