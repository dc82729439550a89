"""The edge router, run as its own process in front of a real upstream HTTP server."""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from harness.servers import free_port
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from stack.edge import READY_PATH, match_route, parse_route
from stack.local import STACK_PACKAGE_ROOT
from stack.process import ManagedProcess, wait_until_ready

ROUTES = {"/api/auth": "http://a", "/api/auth/admin": "http://b", "/api/chat": "http://c"}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/api/auth/login", ("http://a", "/login")),
        ("/api/auth", ("http://a", "/")),
        ("/api/auth/", ("http://a", "/")),
        ("/api/auth/admin/x", ("http://b", "/x")),
        ("/api/chat/conversations/1/messages", ("http://c", "/conversations/1/messages")),
        ("/api/authors", None),
        ("/", None),
        ("/api", None),
    ],
)
def test_the_longest_owning_prefix_wins_and_is_stripped(
    path: str, expected: tuple[str, str] | None
) -> None:
    matched = match_route(ROUTES, path)
    assert ((matched.upstream, matched.path) if matched else None) == expected
    if matched is not None:
        assert path.startswith(matched.prefix)
        assert ROUTES[matched.prefix] == matched.upstream


@pytest.mark.parametrize("text", ["api/auth=http://x", "/api/auth/=http://x", "/a", "/a=x:1"])
def test_malformed_routes_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="expected /prefix=http://host:port"):
        parse_route(text)


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """An upstream that answers with what it received, plus two Set-Cookie headers."""
    if scope["type"] != "http":
        return
    request = Request(scope, receive)
    body = await request.body()
    payload = {
        "method": request.method,
        "raw_path": scope["raw_path"].decode(),
        "query": scope["query_string"].decode(),
        "body": body.decode(),
        "headers": dict(request.headers),
    }
    data = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 201 if request.method == "POST" else 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"set-cookie", b"a=1"),
                (b"set-cookie", b"b=2"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


@dataclass
class EdgeUnderTest:
    url: str
    upstream: str


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(echo, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def _start_edge(tmp_path: Path, *args: str) -> tuple[ManagedProcess, str]:
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(STACK_PACKAGE_ROOT))
    argv = [sys.executable, "-m", "stack.edge", "--port", str(port), *args]
    edge = ManagedProcess("edge", argv, env, tmp_path, tmp_path / "edge.log")
    edge.start()
    base = f"http://127.0.0.1:{port}"
    wait_until_ready({"edge": (edge, base + READY_PATH)}, 30)
    return edge, base


@pytest.fixture(scope="module")
def edge(upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeUnderTest]:
    workdir = tmp_path_factory.mktemp("edge")
    static = workdir / "static"
    (static / "assets").mkdir(parents=True)
    (static / "index.html").write_text("<html>spa</html>")
    (static / "assets" / "app-1234.js").write_text("console.log(1)")
    dead = f"http://127.0.0.1:{free_port()}"
    process, base = _start_edge(
        workdir,
        "--route", f"/api/auth={upstream}",
        "--route", f"/api/stats={dead}",
        "--static", str(static),
    )  # fmt: skip
    yield EdgeUnderTest(url=base, upstream=upstream)
    process.stop()


def test_the_prefix_is_stripped_and_the_rest_forwarded_verbatim(edge: EdgeUnderTest) -> None:
    answer = httpx.get(f"{edge.url}/api/auth/files/a%2Fb%20c?x=1&y=%2F", timeout=10)
    assert answer.status_code == 200
    echoed = answer.json()
    assert echoed["raw_path"] == "/files/a%2Fb%20c"
    assert echoed["query"] == "x=1&y=%2F"
    assert echoed["headers"]["x-forwarded-prefix"] == "/api/auth"
    assert echoed["headers"]["x-forwarded-for"] == "127.0.0.1"


def test_the_bare_prefix_becomes_the_root(edge: EdgeUnderTest) -> None:
    assert httpx.get(f"{edge.url}/api/auth", timeout=10).json()["raw_path"] == "/"


def test_bodies_statuses_and_repeated_headers_pass_through(edge: EdgeUnderTest) -> None:
    answer = httpx.post(
        f"{edge.url}/api/auth/login",
        json={"username": "u"},
        headers={"Authorization": "Bearer t"},
        timeout=10,
    )
    assert answer.status_code == 201
    echoed = answer.json()
    assert echoed["method"] == "POST"
    assert json.loads(echoed["body"]) == {"username": "u"}
    assert echoed["headers"]["authorization"] == "Bearer t"
    assert answer.headers.get_list("set-cookie") == ["a=1", "b=2"]


def test_static_files_and_the_spa_fallback(edge: EdgeUnderTest) -> None:
    assert httpx.get(f"{edge.url}/assets/app-1234.js", timeout=10).text == "console.log(1)"
    assert httpx.get(f"{edge.url}/", timeout=10).text == "<html>spa</html>"
    assert httpx.get(f"{edge.url}/conversations/42", timeout=10).text == "<html>spa</html>"


def test_a_path_outside_every_route_is_not_proxied(edge: EdgeUnderTest) -> None:
    # /api/authors is no route: it falls through to the front end like any unknown page.
    assert httpx.get(f"{edge.url}/api/authors", timeout=10).text == "<html>spa</html>"


def test_an_unreachable_upstream_is_a_502_naming_it(edge: EdgeUnderTest) -> None:
    answer = httpx.get(f"{edge.url}/api/stats/stats/me", timeout=10)
    assert answer.status_code == 502
    assert "upstream http://127.0.0.1:" in answer.json()["detail"]


def test_without_static_files_unknown_paths_are_json_404(upstream: str, tmp_path: Path) -> None:
    process, base = _start_edge(tmp_path, "--route", f"/api/auth={upstream}")
    try:
        answer = httpx.get(f"{base}/nothing", timeout=10)
        assert answer.status_code == 404
        assert answer.json() == {"detail": "no route for this path"}
    finally:
        process.stop()
