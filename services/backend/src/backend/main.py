"""The served application: `uvicorn backend.main:app` (settings from the environment)."""

from backend.app import create_app

app = create_app()
