"""The production commands from service.yaml: `migrate` (a subprocess, as the K8s Job runs it),
then gunicorn serving the app."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable

import httpx
from harness.slowclients import slow_clients
from harness.tokens import TokenIssuer


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


def test_consumer_usage_errors_exit_2(
    manage: Callable[..., subprocess.CompletedProcess[bytes]],
) -> None:
    result = manage("consume_events", "--batch-size", "0")
    assert result.returncode == 2
    assert b"--batch-size must be positive" in result.stderr


def test_slow_clients_do_not_starve_the_health_probe(server: str) -> None:
    """32 connections trickling their headers must not leave the liveness probe waiting."""
    with slow_clients(server, count=32), httpx.Client(base_url=server, timeout=10) as client:
        for _ in range(3):
            assert client.get("/health").status_code == 200
