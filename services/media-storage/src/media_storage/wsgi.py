"""gunicorn entry point: `gunicorn media_storage.wsgi:app` (settings from the environment)."""

from servicekit.logging import configure_logging

from media_storage.app import SERVICE, create_app
from media_storage.config import Settings

settings = Settings()
configure_logging(SERVICE, settings.log_level)
app = create_app(settings)
