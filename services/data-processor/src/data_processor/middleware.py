"""Django glue for servicekit (which ships a FastAPI adapter only): request id, JSON access log,
Prometheus request metrics."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from servicekit.logging import REQUEST_ID_HEADER, request_id_from_header, request_id_var
from servicekit.metrics import UNMATCHED_ROUTE, record_request

from data_processor.observability import http_metrics


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
