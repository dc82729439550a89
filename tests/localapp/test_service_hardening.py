"""The uvicorn services as they ship (service.yaml's `run`, in the session's local stack), called
directly, not through the edge: what they refuse on their own, whatever stands in front of them."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import httpx
import pytest
from ci.localapp.stack import StackUrls

UVICORN_SERVICES = ["auth", "ai", "backend"]


def _health_with_header(base_url: str, header_bytes: int) -> int | None:
    """Status of GET /health carrying one header of `header_bytes` bytes; None when the server
    closed the connection before the whole request was sent or answered."""
    address = urlsplit(base_url)
    assert address.hostname is not None
    assert address.port is not None
    head = f"GET /health HTTP/1.1\r\nHost: {address.hostname}\r\nConnection: close\r\n"
    request = f"{head}X-Padding: {'a' * header_bytes}\r\n\r\n".encode()
    with socket.create_connection((address.hostname, address.port), timeout=60) as sock:
        try:
            sock.sendall(request)
            status_line = sock.makefile("rb").readline()
        except (BrokenPipeError, ConnectionResetError):
            return None
    return int(status_line.split()[1]) if status_line else None


@pytest.mark.parametrize("service", UVICORN_SERVICES)
def test_the_server_bounds_request_headers(local_stack: StackUrls, service: str) -> None:
    url = local_stack.services[service]
    assert _health_with_header(url, 8 * 1024) == 200  # a large cookie or token still passes
    assert _health_with_header(url, 1024 * 1024) in (400, None)  # 1 MiB is refused unread
    assert httpx.get(f"{url}/health", timeout=30).status_code == 200  # and it serves on


@pytest.mark.parametrize("service", UVICORN_SERVICES)
def test_interactive_api_docs_are_off(local_stack: StackUrls, service: str) -> None:
    """/docs and /redoc would run a CDN's scripts on the service's origin; the OpenAPI document
    (plain JSON) stays."""
    with httpx.Client(base_url=local_stack.services[service], timeout=30) as client:
        assert client.get("/docs").status_code == 404
        assert client.get("/redoc").status_code == 404
        assert client.get("/openapi.json").status_code == 200
