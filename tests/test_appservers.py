"""The harness's app servers: uvicorn in a thread (stop, restart on the same port), gunicorn,
the JSON stand-in server."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

import httpx
import pytest
from harness import fakehttp
from harness.appservers import AsgiServer, gunicorn_server
from harness.servers import HarnessError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.types import ASGIApp


class AppFactory:
    """Builds apps that answer with their own serial number (which start served a request)."""

    def __init__(self) -> None:
        self.built = 0

    def __call__(self) -> ASGIApp:
        self.built += 1
        number = self.built

        async def hello(request: Request) -> PlainTextResponse:
            return PlainTextResponse(f"app {number}")

        return Starlette(routes=[Route("/", hello)])


def test_asgi_server_stops_and_restarts_on_the_same_port() -> None:
    factory = AppFactory()
    server = AsgiServer(factory)
    with server:
        port = server.port
        assert port != 0
        assert httpx.get(server.url, timeout=5).text == "app 1"
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url, timeout=5)
    with server:
        assert server.port == port
        assert httpx.get(server.url, timeout=5).text == "app 2"


def test_asgi_server_that_cannot_start_is_an_error() -> None:
    def connect_to_missing_dependency() -> None:
        raise RuntimeError("the app cannot start")

    @contextlib.asynccontextmanager
    async def broken_lifespan(app: Starlette) -> AsyncIterator[None]:
        connect_to_missing_dependency()
        yield

    def failing_startup() -> ASGIApp:
        return Starlette(lifespan=broken_lifespan)

    server = AsgiServer(failing_startup, lifespan="on", start_timeout=5)
    with pytest.raises(HarnessError, match="did not start"):
        server.start()


def test_gunicorn_that_exits_early_is_an_error_naming_it() -> None:
    with (
        pytest.raises(HarnessError, match="gunicorn exited"),
        gunicorn_server("no_such_module_here", "nothing:app", dict(os.environ)),
    ):
        pass


def test_json_server_hands_the_request_to_the_answer_and_encodes_the_reply() -> None:
    seen: list[fakehttp.Request] = []

    def answer(request: fakehttp.Request) -> fakehttp.Reply:
        seen.append(request)
        return (201, {"echo": request.json()}) if request.body else (404, {"detail": "no"})

    with fakehttp.JsonServer(answer) as server:
        created = httpx.post(f"{server.url}/things", json={"a": 1}, headers={"X-Trace": "t1"})
        missing = httpx.get(f"{server.url}/nothing?x=1", timeout=5)
    assert (created.status_code, created.json()) == (201, {"echo": {"a": 1}})
    assert (missing.status_code, missing.json()) == (404, {"detail": "no"})
    assert [(r.method, r.path) for r in seen] == [("POST", "/things"), ("GET", "/nothing?x=1")]
    assert seen[0].headers["X-Trace"] == "t1"
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url, timeout=5)


def test_json_server_sends_a_response_as_given_and_no_body_to_head() -> None:
    def answer(request: fakehttp.Request) -> fakehttp.Response:
        if request.header("x-KIND") != "raw":  # any spelling of the name finds the header
            return fakehttp.Response.json(400, {"detail": "kind"}, {"Link": "<next>"})
        return fakehttp.Response(207, b"raw:" + request.body, {"Content-Type": "text/plain"})

    with fakehttp.JsonServer(answer) as server:
        put = httpx.put(f"{server.url}/x", content=b"abc", headers={"X-Kind": "raw"}, timeout=5)
        head = httpx.head(f"{server.url}/x", headers={"X-Kind": "raw"}, timeout=5)
        patch = httpx.patch(f"{server.url}/x", timeout=5)
    assert (put.status_code, put.content, put.headers["Content-Type"]) == (
        207,
        b"raw:abc",
        "text/plain",
    )
    assert (head.status_code, head.content, head.headers["Content-Length"]) == (207, b"", "4")
    assert (patch.status_code, patch.json(), patch.headers["Link"]) == (
        400,
        {"detail": "kind"},
        "<next>",
    )
    assert patch.headers["Content-Type"] == "application/json"
