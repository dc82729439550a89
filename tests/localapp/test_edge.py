"""The edge router, run as its own process in front of a real upstream HTTP server."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from ci.localapp.edge import READY_PATH, match_route, parse_route
from ci.localapp.process import ManagedProcess, wait_until_ready
from ci.localapp.stack import SOURCE_ROOT
from harness.servers import free_port
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

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
        "forwarded_for": request.headers.getlist("x-forwarded-for"),
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
    log: Path


TOO_LARGE = b'{"detail": "file exceeds the upload limit of 10485760 bytes"}'


@contextlib.contextmanager
def early_answering_upstream() -> Iterator[str]:
    """An upstream that answers 413 after the headers and closes without reading the body.

    Like gunicorn refusing an upload by its Content-Length: the unread body makes the kernel
    reset the connection, so the proxy's write fails after the answer has arrived.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    stopping = threading.Event()

    def serve() -> None:
        while not stopping.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                received = b""
                while b"\r\n\r\n" not in received and (chunk := conn.recv(4096)):
                    received += chunk
                head = (
                    "HTTP/1.1 413 Request Entity Too Large\r\n"
                    "Content-Type: application/json\r\n"
                    f"Content-Length: {len(TOO_LARGE)}\r\nConnection: close\r\n\r\n"
                )
                conn.sendall(head.encode() + TOO_LARGE)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stopping.set()
        listener.close()
        thread.join(timeout=10)


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
    env = dict(os.environ, PYTHONPATH=str(SOURCE_ROOT))
    argv = [sys.executable, "-m", "ci.localapp.edge", "--port", str(port), *args]
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
    with early_answering_upstream() as refusing:
        process, base = _start_edge(
            workdir,
            "--route", f"/api/auth={upstream}",
            "--route", f"/api/stats={dead}",
            "--route", f"/api/media={refusing}",
            "--static", str(static),
        )  # fmt: skip
        yield EdgeUnderTest(url=base, upstream=upstream, log=workdir / "edge.log")
        process.stop()


def test_the_prefix_is_stripped_and_the_rest_forwarded_verbatim(edge: EdgeUnderTest) -> None:
    answer = httpx.get(f"{edge.url}/api/auth/files/a%2Fb%20c?x=1&y=%2F", timeout=10)
    assert answer.status_code == 200
    echoed = answer.json()
    assert echoed["raw_path"] == "/files/a%2Fb%20c"
    assert echoed["query"] == "x=1&y=%2F"
    assert echoed["headers"]["x-forwarded-prefix"] == "/api/auth"
    assert echoed["headers"]["x-forwarded-for"] == "127.0.0.1"


def test_a_forged_forwarded_for_never_reaches_the_service(edge: EdgeUnderTest) -> None:
    """Like the gateway, the edge says who connected; what the client claims is dropped."""
    forged = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
    echoed = httpx.get(f"{edge.url}/api/auth/login", headers=forged, timeout=10).json()
    assert echoed["forwarded_for"] == ["127.0.0.1"]
    assert echoed["headers"]["x-forwarded-proto"] == "http"


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


@pytest.mark.parametrize("path", ["/api/authors", "/api/nosuch/x", "/api/"])
def test_an_unknown_api_path_is_a_json_404_not_the_app(edge: EdgeUnderTest, path: str) -> None:
    # /api/authors is no route (only /api/auth is); the front end's HTML would be a lie there.
    answer = httpx.get(f"{edge.url}{path}", timeout=10)
    assert answer.status_code == 404
    assert answer.json() == {"detail": "no such API route"}


def test_an_unreachable_upstream_is_a_502_naming_it(edge: EdgeUnderTest) -> None:
    answer = httpx.get(f"{edge.url}/api/stats/stats/me", timeout=10)
    assert answer.status_code == 502
    assert "upstream http://127.0.0.1:" in answer.json()["detail"]


def test_an_early_413_reaches_the_client_instead_of_a_502(edge: EdgeUnderTest) -> None:
    body = b"0" * (11 * 1024 * 1024)
    for _ in range(3):  # the connection reset races the answer: it must win every time
        answer = httpx.post(f"{edge.url}/api/media/files", content=body, timeout=30)
        assert answer.status_code == 413, answer.text
        assert answer.content == TOO_LARGE


def access_lines(log: Path, paths: set[str], timeout: float = 60) -> list[dict[str, object]]:
    """The edge's access lines, once there is one for each of `paths`: it logs after it has
    answered, so the client may read its answer before the line is written."""
    deadline = time.monotonic() + timeout
    while True:
        text = log.read_text()
        complete = text[: text.rfind("\n") + 1].splitlines()  # never a line still being written
        lines = [json.loads(line) for line in complete if line.strip()]
        access = [line for line in lines if line["logger"] == "edge.access"]
        if paths <= {line["path"] for line in access} or time.monotonic() > deadline:
            return access
        time.sleep(0.05)


def test_every_request_is_logged_as_one_json_access_line(edge: EdgeUnderTest) -> None:
    httpx.get(f"{edge.url}/api/auth/logged?secret=1", timeout=10)
    httpx.get(f"{edge.url}/api/nosuch", timeout=10)
    access = access_lines(edge.log, {"/api/auth/logged", "/api/nosuch"})
    by_path = {str(line["path"]): line.items() for line in access}
    assert {"method": "GET", "path": "/api/auth/logged", "status": 200}.items() <= by_path[
        "/api/auth/logged"
    ]
    assert {"path": "/api/nosuch", "status": 404, "service": "edge"}.items() <= by_path[
        "/api/nosuch"
    ]
    assert all("secret" not in json.dumps(line) for line in access), "query strings stay out"
    assert not any(line["path"] == READY_PATH for line in access), "probes are not logged"


def test_the_ready_path_answers_with_the_instance_id(upstream: str, tmp_path: Path) -> None:
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(SOURCE_ROOT), EDGE_INSTANCE_ID="run-42")
    argv = [sys.executable, "-m", "ci.localapp.edge", "--port", str(port)]
    edge = ManagedProcess("edge", argv, env, tmp_path, tmp_path / "edge.log")
    edge.start()
    try:
        url = f"http://127.0.0.1:{port}{READY_PATH}"
        wait_until_ready({"edge": (edge, url)}, 30, identities={"edge": "run-42"})
        assert httpx.get(url, timeout=10).text == "run-42"
    finally:
        edge.stop()


def test_without_static_files_unknown_paths_are_json_404(upstream: str, tmp_path: Path) -> None:
    process, base = _start_edge(tmp_path, "--route", f"/api/auth={upstream}")
    try:
        answer = httpx.get(f"{base}/nothing", timeout=10)
        assert answer.status_code == 404
        assert answer.json() == {"detail": "no route for this path"}
    finally:
        process.stop()
