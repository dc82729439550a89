"""ASGI entry point: `uvicorn auth.main:app` (settings from the environment)."""

from auth.app import create_app

app = create_app()
