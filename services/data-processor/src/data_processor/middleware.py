"""Django glue for servicekit (which ships a FastAPI adapter only): request id, JSON access log,
Prometheus request metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from servicekit.logging import REQUEST_ID_HEADER, request_id_from_header, request_id_var
from servicekit.metrics import UNMATCHED_ROUTE, record_request

from data_processor.observability import http_metrics

logger = logging.getLogger(__name__)


class RequestContextMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request_id_from_header(request.headers.get(REQUEST_ID_HEADER))
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            response[REQUEST_ID_HEADER] = request_id
            self._record(request, response.status_code, time.perf_counter() - started)
            return response
        finally:
            request_id_var.reset(token)

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        """PostgreSQL down or being failed over: 503 and a retry soon may succeed (not a 500)."""
        if not isinstance(exc, OperationalError | InterfaceError):
            return None
        logger.warning("database unavailable", extra={"error": repr(exc)})
        response = JsonResponse({"detail": "database unavailable"}, status=503)
        response["Retry-After"] = "1"
        return response

    @staticmethod
    def _record(request: HttpRequest, status: int, seconds: float) -> None:
        match = request.resolver_match
        route = f"/{match.route}" if match is not None and match.route else UNMATCHED_ROUTE
        record_request(
            http_metrics,
            method=request.method or "GET",
            path=request.path_info,
            route=route,
            status=status,
            seconds=seconds,
        )
