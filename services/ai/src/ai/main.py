"""The served application: `uvicorn ai.main:app` (settings from the environment)."""

from ai.app import create_app

app = create_app()
