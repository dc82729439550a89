"""The production commands from service.yaml: `migrate` (a subprocess, as the K8s Job runs it),
then gunicorn serving the app."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from harness.appservers import gunicorn_server
from harness.slowclients import slow_clients
from harness.tokens import TokenIssuer

MANAGE = [sys.executable, "-m", "data_processor.manage"]


@pytest.fixture
def server_env(
    make_database: Callable[[], str], redis_url: str, token_issuer: TokenIssuer, tmp_path: Path
) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SECRET_KEY": f"test-only-{uuid.uuid4().hex}",
        "DATABASE_URL": make_database(),
        "REDIS_URL": redis_url,
        "JWKS_URL": token_issuer.jwks_url,
        "GUNICORN_WORKER_TMP_DIR": str(tmp_path),
    }


@pytest.fixture
def server(server_env: dict[str, str]) -> Iterator[str]:
    migrate = subprocess.run(
        [*MANAGE, "migrate", "--noinput"], env=server_env, capture_output=True, timeout=120
    )
    assert migrate.returncode == 0, migrate.stderr.decode()
    with gunicorn_server("data_processor.gunicorn_conf", "data_processor.wsgi", server_env) as url:
        yield url


def test_gunicorn_serves_health_readiness_and_stats(server: str, token_issuer: TokenIssuer) -> None:
    user = uuid.uuid4()
    headers = token_issuer.bearer(str(user), "alice")
    with httpx.Client(base_url=server, timeout=10) as client:
        assert client.get("/health").json() == {"status": "ok"}
        ready = client.get("/ready")
        assert ready.status_code == 200, ready.text
        stats = client.get("/stats/me", headers=headers)
        assert stats.status_code == 200
        assert stats.json() == {
            "user_id": str(user),
            "total_messages": 0,
            "per_day": [],
            "active_conversations": 0,
        }
        assert client.get("/stats/me").status_code == 401
        assert "X-Request-ID" in client.get("/health").headers


def test_consumer_usage_errors_exit_2(server_env: dict[str, str]) -> None:
    result = subprocess.run(
        [*MANAGE, "consume_events", "--batch-size", "0"],
        env=server_env,
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert b"--batch-size must be positive" in result.stderr


def test_slow_clients_do_not_starve_the_health_probe(server: str) -> None:
    """32 connections trickling their headers must not leave the liveness probe waiting."""
    with slow_clients(server, count=32), httpx.Client(base_url=server, timeout=10) as client:
        for _ in range(3):
            assert client.get("/health").status_code == 200
