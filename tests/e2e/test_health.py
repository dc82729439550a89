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
