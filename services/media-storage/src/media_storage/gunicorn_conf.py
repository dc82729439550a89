"""gunicorn settings: `gunicorn -c python:media_storage.gunicorn_conf media_storage.wsgi:app`.

Threads in one worker by default (see servicekit.gunicorn); the volume (a ReadWriteOnce PVC) is
served by one pod anyway. WEB_CONCURRENCY adds workers. Uploads stream, hence the longer timeout.
"""

from servicekit.gunicorn import gunicorn_settings

globals().update(gunicorn_settings("media-storage", timeout=60))
