"""The FastAPI application: `create_app(settings)`; `backend.main:app` is the served instance."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from servicekit.fastapi import docs_options, install, verifier_from_settings
from servicekit.health import async_postgres_check
from servicekit.logging import configure_logging
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from backend.api import router
from backend.config import Settings
from backend.runtime import Runtime

log = logging.getLogger(__name__)


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable", extra={"error": repr(exc)})
    return JSONResponse(
        {"detail": "the database is unavailable, try again shortly"},
        status_code=503,
        headers={"Retry-After": "5"},
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging("backend", settings.log_level)
    verifier = verifier_from_settings(settings.jwks_url, settings.jwt_issuer, settings.jwt_audience)
    if settings.redis_target() is None:
        log.warning("REDIS_URL is not set: events stay in the outbox and nothing is rate limited")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime: Runtime = app.state.runtime
        runtime.start_background()
        try:
            yield
        finally:
            await runtime.aclose()

    runtime = Runtime(settings)
    app = FastAPI(
        title="chat backend", version="0.1.0", lifespan=lifespan, **docs_options(settings.api_docs)
    )
    app.state.runtime = runtime
    metrics = install(
        app,
        # Redis is left out on purpose: without it messages are still stored (the outbox keeps
        # the events), so taking every replica out of service would turn degradation into outage.
        readiness_checks={"database": async_postgres_check(runtime.engine)},
        verifier=verifier,
        max_body_bytes=settings.max_body_bytes,
        service_name="backend",
    )
    runtime.register_metrics(metrics.registry)
    app.add_exception_handler(DBAPIError, _database_unavailable)
    app.add_exception_handler(PoolTimeoutError, _database_unavailable)
    app.include_router(router)
    return app
