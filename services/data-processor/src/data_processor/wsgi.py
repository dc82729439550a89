"""gunicorn entry point: `gunicorn data_processor.wsgi:application`."""

from __future__ import annotations

import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application
from servicekit.events import telemetry_if_wanted
from servicekit.logging import configure_logging

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "data_processor.settings")
if telemetry := telemetry_if_wanted():  # before the handler loads its middleware
    telemetry.trace_django("data-processor")
application = get_wsgi_application()
configure_logging("data-processor", settings.CONFIG.log_level)
