"""Flask glue for servicekit (which ships a FastAPI adapter only): request id, JSON access log,
Prometheus metrics, JSON errors and bearer-token authentication."""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Flask, Response, g, jsonify, request
from servicekit.jwt import BearerRejectedError, JwtVerifier, VerifiedToken, verify_bearer
from servicekit.logging import REQUEST_ID_HEADER, request_id_from_header, request_id_var
from servicekit.metrics import UNMATCHED_ROUTE, HttpMetrics, record_request
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from werkzeug.exceptions import HTTPException

error_logger = logging.getLogger("servicekit.errors")


class ApiError(HTTPException):
    """An error answered as `{"detail": ...}` with the given status and extra headers."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.code = status
        self.extra_headers = headers or {}

    def get_headers(self, *args: Any, **kwargs: Any) -> list[tuple[str, str]]:
        return [*super().get_headers(*args, **kwargs), *self.extra_headers.items()]


def install(app: Flask, metrics: HttpMetrics) -> None:
    """Request id, access log and metrics around every request; JSON for every error."""

    @app.before_request
    def _start() -> None:
        request_id = request_id_from_header(request.headers.get(REQUEST_ID_HEADER))
        g.request_id = request_id
        g.request_id_token = request_id_var.set(request_id)
        g.started = time.perf_counter()

    @app.after_request
    def _finish(response: Response) -> Response:
        response.headers[REQUEST_ID_HEADER] = g.get("request_id", "")
        route = request.url_rule.rule if request.url_rule else UNMATCHED_ROUTE
        seconds = time.perf_counter() - g.get("started", time.perf_counter())
        record_request(
            metrics,
            method=request.method,
            path=request.path,
            route=route,
            status=response.status_code,
            seconds=seconds,
        )
        return response

    @app.teardown_request
    def _reset(_exc: BaseException | None) -> None:
        token = g.pop("request_id_token", None)
        if token is not None:
            request_id_var.reset(token)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> tuple[Response, int]:
        response = jsonify(detail=exc.description or exc.name)
        # Keep the exception's protocol headers: Allow, Content-Range (416), WWW-Authenticate.
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response, exc.code or 500

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    @app.errorhandler(PoolTimeoutError)
    def _database_unavailable(exc: Exception) -> tuple[Response, int, dict[str, str]]:
        # PostgreSQL down or being failed over: a retry soon may succeed (not a bug: no 500).
        error_logger.warning("database unavailable", extra={"error": repr(exc)})
        return jsonify(detail="database unavailable"), 503, {"Retry-After": "1"}

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> tuple[Response, int]:
        error_logger.exception("unhandled error", extra={"path": request.path})
        return jsonify(detail="internal server error"), 500


def current_user(verifier: JwtVerifier) -> VerifiedToken:
    """The verified bearer token of this request, or a 401 (503 when the JWKS is unreachable)."""
    try:
        return verify_bearer(verifier, request.headers.get("Authorization"))
    except BearerRejectedError as rejected:
        raise ApiError(rejected.status, rejected.detail, rejected.headers) from rejected


def json_body(payload: dict[str, Any], status: int = 200) -> tuple[Response, int]:
    return jsonify(payload), status
