"""FastAPI adapter: one `install(app, ...)` call gives a service the shared behaviour.

- request id (X-Request-ID in, or generated; echoed in the response) bound to every log line,
- one JSON access log line and Prometheus metrics per request,
- `/health`, `/ready` (the given dependency checks), `/metrics`,
- optionally a request-body size limit (413, also for chunked bodies),
- errors as `{"detail": "..."}`; malformed bodies get 422 with a readable message, never 500,
- `CurrentUser`: a dependency that returns the verified bearer token's user.

Requires the `fastapi` extra. Flask/Django services use the framework-neutral modules instead.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from http import HTTPStatus
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from servicekit.bodylimit import BodySizeLimit
from servicekit.health import Check, liveness, run_checks
from servicekit.jwt import AsyncJwtVerifier, BearerRejectedError, TokenError, VerifiedToken
from servicekit.logging import REQUEST_ID_HEADER, request_id_from_header, request_id_var
from servicekit.metrics import (
    UNMATCHED_ROUTE,
    HttpMetrics,
    came_through_a_proxy,
    record_request,
)
from servicekit.ratelimit import charges_of_this_request

error_logger = logging.getLogger("servicekit.errors")


class RequestContextMiddleware:
    """Pure ASGI middleware: request id, access log and metrics (no body buffering); rate-limit
    costs handed back when the answer is a 5xx (`servicekit.ratelimit.charges_of_this_request`)."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, REQUEST_ID_HEADER.lower().encode())
        request_id = request_id_from_header(incoming)
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500  # what the client sees if the app dies before starting a response

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                if status >= 500:  # not served: handed back before the client can retry
                    await charges.refund_all()
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.lower().encode(), request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            with charges_of_this_request() as charges:
                try:
                    await self.app(scope, receive, send_with_id)
                except Exception:
                    if status >= 500:  # died before answering: the client sees a 500
                        await charges.refund_all()
                    raise
        finally:
            self._record(scope, status, time.perf_counter() - started)
            request_id_var.reset(token)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        route = getattr(scope.get("route"), "path", UNMATCHED_ROUTE)
        record_request(
            self.metrics,
            method=str(scope["method"]),
            path=scope["path"],
            route=route,
            status=status,
            seconds=seconds,
        )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _describe_validation_errors(errors: Sequence[Any]) -> str:
    """`body.username: Field required; body.password: ...` from pydantic's error list."""
    parts = []
    for error in errors:
        location = ".".join(str(part) for part in error.get("loc", ()))
        parts.append(f"{location}: {error.get('msg', 'invalid')}" if location else error["msg"])
    return "; ".join(parts) or "invalid request"


ERROR_SCHEMA_NAME = "ErrorDetail"
ERROR_SCHEMA: dict[str, Any] = {
    "title": ERROR_SCHEMA_NAME,
    "type": "object",
    "properties": {
        "detail": {"type": "string", "description": "what went wrong, naming the field"}
    },
    "required": ["detail"],
}


def _truthful_openapi(app: FastAPI, *, body_limit: bool) -> Callable[[], dict[str, Any]]:
    """FastAPI's OpenAPI document, corrected to what `install` makes the app answer.

    Every error body is `{"detail": "<string>"}` (FastAPI documents 422 as a list); operations
    behind `CurrentUser` may answer 401 and 503 (keys unreachable), one that takes a body 400
    (undecodable) and, with a body limit, 413. Routes document their own other statuses.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if getattr(app.state, "servicekit_openapi", None) is None:
            app.state.servicekit_openapi = _corrected(generate(), body_limit=body_limit)
        document: dict[str, Any] = app.state.servicekit_openapi
        return document

    return openapi


def _corrected(document: dict[str, Any], *, body_limit: bool) -> dict[str, Any]:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas[ERROR_SCHEMA_NAME] = ERROR_SCHEMA
    error_content = {
        "application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA_NAME}"}}
    }
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.setdefault("responses", {})
            if operation.get("security"):
                responses.setdefault("401", {"description": "missing or invalid bearer token"})
                responses.setdefault("503", {"description": "token keys unavailable"})
            if "requestBody" in operation:
                # FastAPI's own answer to a body it cannot decode (not UTF-8, broken form)
                responses.setdefault("400", {"description": "the body cannot be parsed"})
                if body_limit:
                    responses.setdefault("413", {"description": "request body too large"})
            for code, response in responses.items():
                if code[0] in "45":
                    response["content"] = error_content
                    if response.get("description") in (None, "", "Additional Response"):
                        response["description"] = HTTPStatus(int(code)).phrase
    return document


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": _describe_validation_errors(exc.errors())}, status_code=422)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    error_logger.exception("unhandled error", exc_info=exc)
    return JSONResponse({"detail": "internal server error"}, status_code=500)


def docs_options(enabled: bool) -> dict[str, Any]:
    """`FastAPI(..., **docs_options(settings.api_docs))`: /docs and /redoc only when enabled
    (they load scripts from a CDN into the service's origin); /openapi.json either way."""
    return {} if enabled else {"docs_url": None, "redoc_url": None}


def _trace_requests(app: FastAPI, service_name: str) -> None:
    """Server spans for every request, continuing the caller's W3C trace context, when an OTLP
    endpoint is configured (servicekit.telemetry). Without one, OpenTelemetry is not even
    imported; with one but without the `telemetry` extra, a warning says why nothing is traced."""
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip():
        return
    try:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        from servicekit import telemetry
    except ImportError as exc:
        error_logger.warning("an OTLP endpoint is set, but tracing is not installed: %s", exc)
        return
    provider = telemetry.configure_tracing(service_name)
    if provider is not None:
        FastAPIInstrumentor.instrument_app(app, tracer_provider=provider)


def install(
    app: FastAPI,
    *,
    readiness_checks: Mapping[str, Check] | None = None,
    verifier: AsyncJwtVerifier | None = None,
    check_timeout: float = 2.0,
    max_body_bytes: int | None = None,
    service_name: str | None = None,
) -> HttpMetrics:
    """Add middleware, error handlers, `/health`, `/ready` and `/metrics` to `app`.

    `verifier` backs the `CurrentUser` dependency; build it with `verifier_from_settings`.
    `max_body_bytes` answers larger request bodies with 413 before the app reads them.
    `service_name` names the service in its traces (default: the app's title).
    Call `servicekit.logging.configure_logging` once at start-up as well.
    """
    metrics = HttpMetrics()
    _trace_requests(app, service_name or app.title)
    checks = dict(readiness_checks or {})
    app.state.servicekit_verifier = verifier
    if max_body_bytes is not None:
        # Added first so it sits inside the request-context middleware: a 413 still gets a
        # request id, an access log line and a metrics sample.
        app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)

    @app.get("/health", tags=["ops"], summary="Liveness")
    async def health() -> JSONResponse:
        report = liveness()
        return JSONResponse(report.body, status_code=report.status_code)

    @app.get(
        "/ready",
        tags=["ops"],
        summary="Readiness: every dependency reachable",
        responses={503: {"description": "a dependency is unreachable"}},
    )
    async def ready() -> JSONResponse:
        report = await run_checks(checks, check_timeout)
        return JSONResponse(report.body, status_code=report.status_code)

    @app.get("/metrics", tags=["ops"], include_in_schema=False)
    async def prometheus_metrics(request: Request) -> Response:
        if came_through_a_proxy(request.headers.get):
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    app.openapi = _truthful_openapi(app, body_limit=max_body_bytes is not None)  # type: ignore[method-assign]
    return metrics


def verifier_from_settings(jwks_url: str | None, issuer: str, audience: str) -> AsyncJwtVerifier:
    if not jwks_url:
        raise ValueError("JWKS_URL is required to verify bearer tokens")
    return AsyncJwtVerifier(jwks_url, issuer=issuer, audience=audience)


_bearer = HTTPBearer(auto_error=False, description="Access token from the auth service")


def _refused(rejected: BearerRejectedError) -> StarletteHTTPException:
    return StarletteHTTPException(rejected.status, rejected.detail, rejected.headers or None)


async def current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> VerifiedToken:
    """The verified user of the request's `Authorization: Bearer <token>`; 401 otherwise."""
    verifier: AsyncJwtVerifier | None = getattr(request.app.state, "servicekit_verifier", None)
    if verifier is None:
        raise RuntimeError("servicekit.fastapi.install(app, verifier=...) was not given a verifier")
    if credentials is None:
        raise _refused(BearerRejectedError.missing())
    try:
        return await verifier.verify(credentials.credentials)
    except TokenError as exc:
        raise _refused(BearerRejectedError.for_token_error(exc)) from exc


CurrentUser = Annotated[VerifiedToken, Depends(current_user)]
