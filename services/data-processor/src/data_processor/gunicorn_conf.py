"""gunicorn settings: `gunicorn -c python:data_processor.gunicorn_conf data_processor.wsgi`.

One worker with threads by default (see servicekit.gunicorn); WEB_CONCURRENCY adds workers.
"""

from servicekit.gunicorn import gunicorn_settings

globals().update(gunicorn_settings("data-processor", timeout=30))
