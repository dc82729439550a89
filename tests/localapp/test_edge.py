"""The edge: the real NGINX, configured as the local app configures it, in front of real upstream
HTTP servers (an echo, one that answers early, one that is down)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from ci.localapp.edge import READY_PATH, EdgeError, Route, chart_route, edge_process
from ci.localapp.process import ManagedProcess, wait_until_ready
from ci.localapp.stack import REPO_ROOT
from harness.servers import free_port
from starlette.requests import Request
from starlette.types import Receive, Scope, Send


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
        "cookie": request.headers.get("cookie"),
    }
    data = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 201 if request.method == "POST" else 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"set-cookie", b"a=1; Path=/"),
                (b"set-cookie", b"b=2; Path=/"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


@dataclass
class EdgeUnderTest:
    url: str
    upstream: str
    log: Path


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


def _start_edge(
    tmp_path: Path, routes: list[Route], static: Path | None
) -> tuple[ManagedProcess, str]:
    port = free_port()
    edge, instance = edge_process(
        REPO_ROOT, routes, port=port, static_dir=static, run_dir=tmp_path / "run", logs=tmp_path
    )
    edge.start()
    base = f"http://127.0.0.1:{port}"
    wait_until_ready({"edge": (edge, base + READY_PATH)}, 60, identities={"edge": instance})
    return edge, base


@pytest.fixture(scope="module")
def attacker() -> Iterator[tuple[int, list[bytes]]]:
    """A server on another port that records every request it receives."""
    listener = socket.create_server(("127.0.0.1", 0))
    received: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                received.append(conn.recv(65536))
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\npwned!"
                )

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], received
    listener.close()
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def edge(upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeUnderTest]:
    workdir = tmp_path_factory.mktemp("edge")
    static = workdir / "static"
    (static / "assets").mkdir(parents=True)
    (static / "index.html").write_text("<html>spa</html>")
    (static / "assets" / "app-1234.js").write_text("console.log(1)")
    dead = f"http://127.0.0.1:{free_port()}"
    routes = [
        Route("auth", "/api/auth", upstream, "1m"),
        Route("chat", "/api/chat", upstream, "1m"),
        Route("stats", "/api/stats", dead, "1m"),
        Route("media", "/api/media", upstream, "12m"),
    ]
    process, base = _start_edge(workdir, routes, static)
    yield EdgeUnderTest(url=base, upstream=upstream, log=workdir / "edge.log")
    process.stop()


def test_the_prefix_is_stripped_and_the_query_forwarded_verbatim(edge: EdgeUnderTest) -> None:
    answer = httpx.get(f"{edge.url}/api/auth/files/a%20c?x=1&y=%2F", timeout=10)
    assert answer.status_code == 200
    echoed = answer.json()
    assert echoed["raw_path"] == "/files/a%20c"
    assert echoed["query"] == "x=1&y=%2F"
    assert echoed["headers"]["x-forwarded-prefix"] == "/api/auth"
    assert echoed["headers"]["x-forwarded-for"] == "127.0.0.1"


def test_an_encoded_slash_never_reaches_another_host(
    edge: EdgeUnderTest, attacker: tuple[int, list[bytes]]
) -> None:
    """`/api/auth%2F@host:port/x` is auth's path `/@host:port/x`: the upstream stays auth."""
    port, received = attacker
    answer = httpx.get(f"{edge.url}/api/auth%2F@127.0.0.1:{port}/x", timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["raw_path"] == f"/@127.0.0.1:{port}/x"
    assert answer.text != "pwned!"
    assert received == []


def test_an_encoded_slash_after_a_prefix_is_that_services_path(edge: EdgeUnderTest) -> None:
    answer = httpx.get(f"{edge.url}/api/chat%2Fx", timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["raw_path"] == "/x"


def test_forged_forwarding_headers_are_replaced(edge: EdgeUnderTest) -> None:
    """Like the gateway, the edge says who connected; what the client claims is dropped."""
    forged = {
        "X-Forwarded-For": "203.0.113.7",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "evil.example",
        "X-Forwarded-Prefix": "/evil",
        "Forwarded": "for=203.0.113.7",
        "X-Real-IP": "203.0.113.7",
    }
    echoed = httpx.get(f"{edge.url}/api/auth/login", headers=forged, timeout=10).json()
    assert echoed["forwarded_for"] == ["127.0.0.1"]
    headers = echoed["headers"]
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-host"] == edge.url.removeprefix("http://").split(":")[0]
    assert headers["x-forwarded-prefix"] == "/api/auth"
    assert "forwarded" not in headers
    assert "x-real-ip" not in headers


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
    assert answer.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2; Path=/"]


def test_one_clients_cookies_never_reach_another_client(edge: EdgeUnderTest) -> None:
    """No shared cookie jar: the upstream's Set-Cookie goes to the client that got it only."""
    with httpx.Client(base_url=edge.url, timeout=10) as first:
        first.get("/api/auth/login")
        assert first.get("/api/auth/me").json()["cookie"] == "a=1; b=2"
    assert httpx.get(f"{edge.url}/api/auth/me", timeout=10).json()["cookie"] is None


def test_static_files_the_spa_fallback_and_the_front_ends_headers(edge: EdgeUnderTest) -> None:
    assert httpx.get(f"{edge.url}/assets/app-1234.js", timeout=10).text == "console.log(1)"
    for path in ("/", "/conversations/42"):
        page = httpx.get(f"{edge.url}{path}", timeout=10)
        assert page.text == "<html>spa</html>"
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["cache-control"] == "no-cache"


@pytest.mark.parametrize("path", ["/api/authors", "/api/nosuch/x", "/api/"])
def test_an_unknown_api_path_is_a_json_404_not_the_app(edge: EdgeUnderTest, path: str) -> None:
    # /api/authors is no route (only /api/auth is); the front end's HTML would be a lie there.
    answer = httpx.get(f"{edge.url}{path}", timeout=10)
    assert answer.status_code == 404
    assert answer.json() == {"detail": "no such API route"}


def test_an_unreachable_upstream_is_a_json_502_naming_it(edge: EdgeUnderTest) -> None:
    answer = httpx.get(f"{edge.url}/api/stats/stats/me", timeout=10)
    assert answer.status_code == 502
    assert answer.json()["detail"].startswith("stats (http://127.0.0.1:")


def test_a_body_within_the_routes_limit_passes(edge: EdgeUnderTest) -> None:
    """media's route takes 12m (its chart's maxBodySize), auth's 1m."""
    answer = httpx.post(
        f"{edge.url}/api/media/files", content=b"0" * (11 * 1024 * 1024), timeout=60
    )
    assert answer.status_code == 201
    assert len(answer.json()["body"]) == 11 * 1024 * 1024


def test_a_body_over_the_routes_limit_is_refused_at_the_edge(edge: EdgeUnderTest) -> None:
    answer = httpx.post(f"{edge.url}/api/auth/login", content=b"0" * (2 * 1024 * 1024), timeout=30)
    assert answer.status_code == 413
    assert answer.json() == {"detail": "request body larger than 1m"}


def access_lines(log: Path, paths: set[str], timeout: float = 60) -> list[dict[str, object]]:
    """The edge's access lines, once there is one for each of `paths`: it logs after it has
    answered, so the client may read its answer before the line is written."""
    deadline = time.monotonic() + timeout
    while True:
        text = log.read_text() if log.exists() else ""
        complete = text[: text.rfind("\n") + 1].splitlines()  # never a line still being written
        access = [json.loads(line) for line in complete if line.strip()]
        if paths <= {line["path"] for line in access} or time.monotonic() > deadline:
            return access
        time.sleep(0.05)


def test_every_request_is_logged_as_one_json_access_line(edge: EdgeUnderTest) -> None:
    httpx.get(f"{edge.url}/api/auth/logged?secret=1", timeout=10)
    httpx.get(f"{edge.url}/api/nosuch", timeout=10)
    access = access_lines(edge.log, {"/api/auth/logged", "/api/nosuch"})
    by_path = {str(line["path"]): line.items() for line in access}
    expected = {"method": "GET", "path": "/api/auth/logged", "status": 200, "logger": "edge.access"}
    assert expected.items() <= by_path["/api/auth/logged"]
    assert {"path": "/api/nosuch", "status": 404, "service": "edge"}.items() <= by_path[
        "/api/nosuch"
    ]
    assert all("secret" not in json.dumps(line) for line in access), "query strings stay out"
    assert not any(line["path"] == READY_PATH for line in access), "probes are not logged"


def test_the_routes_come_from_the_charts_values() -> None:
    route = chart_route(REPO_ROOT, "media-storage", "http://127.0.0.1:1")
    assert (route.prefix, route.max_body) == ("/api/media", "12m")
    assert chart_route(REPO_ROOT, "auth", "http://127.0.0.1:1").prefix == "/api/auth"


def test_a_chart_without_a_usable_route_is_an_error_naming_the_file(tmp_path: Path) -> None:
    values = tmp_path / "charts" / "x" / "values.yaml"
    values.parent.mkdir(parents=True)
    values.write_text("route: /api/x\nhttpRoute: {maxBodySize: lots}\n")
    with pytest.raises(EdgeError, match=r"charts/x/values.yaml: httpRoute.maxBodySize"):
        chart_route(tmp_path, "x", "http://127.0.0.1:1")
    values.write_text("route: /x/\n")
    with pytest.raises(EdgeError, match=r"charts/x/values.yaml: route must be"):
        chart_route(tmp_path, "x", "http://127.0.0.1:1")
