"""Every service answers its probes through the ingress path of its route."""

from __future__ import annotations

import pytest

from e2e.api import client_for

ROUTES = {
    "auth": "/api/auth",
    "backend": "/api/chat",
    "ai": "/api/ai",
    "media-storage": "/api/media",
    "data-processor": "/api/stats",
}


@pytest.mark.parametrize("route", ROUTES.values(), ids=ROUTES.keys())
def test_health_and_ready(base_url: str, route: str) -> None:
    with client_for(base_url) as client:
        health = client.get(f"{route}/health")
        ready = client.get(f"{route}/ready")
    assert (health.status_code, ready.status_code) == (200, 200), (health.text, ready.text)


@pytest.mark.parametrize("route", ROUTES.values(), ids=ROUTES.keys())
def test_metrics_are_not_served_through_the_public_route(base_url: str, route: str) -> None:
    """Prometheus scrapes the pods inside the cluster; through the gateway /metrics is a 404."""
    with client_for(base_url) as client:
        answer = client.get(f"{route}/metrics")
    assert answer.status_code == 404, answer.text[:200]
    assert "http_requests_total" not in answer.text
