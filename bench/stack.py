"""The local stack (ci.localapp: every Python service as a real process behind the edge router):
request latency of login, post message and upload, and the e2e suite's wall time.

The anchor of a request is a GET of auth's /health through the same edge: what any request costs
before the service does its work. The rate limits are raised for the stack measured here, so
the figures are the requests' cost, not the limiter's refusals.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
from ci.localapp.stack import LocalStack
from e2e.api import PASSWORD, sign_up
from harness.lifetime import bound_to_parent
from harness.postgres_pair import PostgresPair, postgres_pair
from harness.servers import PostgresServer, RedisServer

from bench.table import Row, p50

REPO_ROOT = Path(__file__).resolve().parents[1]
REQUESTS = 30
NO_LIMITS = {
    "auth": {"AUTH_LOGIN_LIMIT_PER_IP": "1000000", "AUTH_LOGIN_LIMIT_PER_ACCOUNT": "1000000"},
    "backend": {"MESSAGE_RATE_LIMIT": "1000000"},
}
UPLOAD = b"benchmark upload\n" * 4096  # 68 KiB of text/plain


def latencies(request: Callable[[], httpx.Response], expected: int) -> list[float]:
    samples = []
    for _ in range(REQUESTS):
        started = time.perf_counter()
        answer = request()
        samples.append(time.perf_counter() - started)
        if answer.status_code != expected:
            raise RuntimeError(f"{answer.request.url}: {answer.status_code} {answer.text[:200]}")
    return samples


def measure(edge: str) -> list[Row]:
    user = sign_up(edge, prefix="bench")
    client = user.client
    login = {"username": user.username, "password": PASSWORD}
    conversation = client.post("/api/chat/conversations", json={"title": "bench"}).json()["id"]
    messages = f"/api/chat/conversations/{conversation}/messages"
    files = {"file": ("bench.txt", UPLOAD, "text/plain")}
    health = p50(latencies(lambda: client.get("/api/auth/health"), 200))
    note = f"p50 of {REQUESTS} through the edge; anchor: GET /api/auth/health"
    rows = [
        ("local stack: log in", lambda: client.post("/api/auth/login", json=login), 200),
        ("local stack: post a message", lambda: client.post(messages, json={"content": "hi"}), 201),
        ("local stack: upload 68 KiB", lambda: client.post("/api/media/files", files=files), 201),
    ]
    try:
        return [
            Row(label, p50(latencies(request, code)), health, "ms", note)
            for label, request, code in rows
        ]
    finally:
        client.close()


@dataclass(frozen=True)
class BenchApp:
    """The local app and the PostgreSQL and Redis it runs on (chaos stops and restarts them);
    `pair` when the PostgreSQL is a primary with a replica behind a Service (`postgres` is
    then the primary it started with)."""

    stack: LocalStack
    edge: str
    postgres: PostgresServer
    redis: RedisServer
    pair: PostgresPair | None = None


@contextlib.contextmanager
def local_app(
    extra_env: Mapping[str, Mapping[str, str]], *, replicated: bool = False
) -> Iterator[BenchApp]:
    """The local app on a PostgreSQL and a Redis of its own, all stopped on leaving;
    `replicated`: the PostgreSQL a primary streaming to a replica, reached through a Service
    stand-in (harness.postgres_pair), as CloudNativePG runs it."""
    with contextlib.ExitStack() as servers:
        pair = servers.enter_context(postgres_pair()) if replicated else None
        postgres = pair.primary if pair else PostgresServer().init()
        if pair is None:
            servers.callback(postgres.destroy)
            postgres.start()
        redis_server = RedisServer(databases=16)
        servers.callback(redis_server.destroy)
        redis_server.start()
        stack = LocalStack(
            repo_root=REPO_ROOT,
            postgres_admin_url=pair.url() if pair else postgres.url(),
            redis_url=redis_server.url(0),
            extra_env=extra_env,
        )
        with stack as urls:
            yield BenchApp(stack, urls.edge, postgres, redis_server, pair)


def run() -> list[Row]:
    with local_app(NO_LIMITS) as app:
        return measure(app.edge)


def e2e_wall_time() -> list[Row]:
    """`pytest tests/e2e` as `make e2e` runs it (it starts its own stack)."""
    started = time.perf_counter()
    done = subprocess.run(  # noqa: S603 - our interpreter running pytest
        bound_to_parent(
            [sys.executable, "-m", "pytest", "tests/e2e", "-q", "-p", "no:cacheprovider"]
        ),
        cwd=REPO_ROOT,
        env={k: v for k, v in os.environ.items() if k != "E2E_BASE_URL"},
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    seconds = time.perf_counter() - started
    summary = (done.stdout.strip().splitlines() or ["no output"])[-1]
    if done.returncode != 0:
        raise RuntimeError(f"the e2e suite failed: {summary}")
    return [Row("e2e suite (local stack), wall time", seconds, None, "s", summary.strip("= "))]
