"""Health, readiness, metrics, database outages, and the embedded SQLite default."""

from __future__ import annotations

from pathlib import Path

import pytest
from backend.config import DEFAULT_DATABASE_URL, Settings
from backend.migrate import upgrade
from backend_fakes import MakeBackend
from harness.appservers import AsgiServer
from harness.servers import PostgresServer


async def test_health_ready_and_metrics(
    make_backend: MakeBackend, ai_server: AsgiServer, alice: dict[str, str]
) -> None:
    backend = await make_backend(ai_url=ai_server.url)
    assert (await backend.http.get("/health")).json() == {"status": "ok"}
    ready = await backend.http.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"]["status"] == "ok"

    conversation = await backend.http.post("/conversations", json={"title": "m"}, headers=alice)
    path = f"/conversations/{conversation.json()['id']}/messages"
    await backend.http.post(path, json={"content": "count me"}, headers=alice)
    metrics = (await backend.http.get("/metrics")).text
    assert 'backend_replies_total{status="completed"} 1.0' in metrics
    assert "http_requests_total" in metrics


async def test_database_outage_is_503_and_ready_recovers(
    make_backend: MakeBackend,
    ai_server: AsgiServer,
    alice: dict[str, str],
    private_postgres: PostgresServer,
) -> None:
    backend = await make_backend(ai_url=ai_server.url, database_url=private_postgres.url())
    assert (await backend.http.get("/ready")).status_code == 200
    private_postgres.stop()
    assert (await backend.http.get("/ready")).status_code == 503
    response = await backend.http.post("/conversations", json={"title": "x"}, headers=alice)
    assert response.status_code == 503
    assert "database" in response.json()["detail"]
    private_postgres.start()
    assert (await backend.http.get("/ready")).status_code == 200
    response = await backend.http.post("/conversations", json={"title": "x"}, headers=alice)
    assert response.status_code == 201


def test_sqlite_is_the_default_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert Settings().database_url == DEFAULT_DATABASE_URL
    assert DEFAULT_DATABASE_URL.startswith("sqlite:///")


async def test_whole_flow_on_sqlite(
    make_backend: MakeBackend, ai_server: AsgiServer, alice: dict[str, str], tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/solo.db"
    upgrade(url)
    backend = await make_backend(ai_url=ai_server.url, database_url=url)
    conversation = await backend.http.post("/conversations", json={"title": "solo"}, headers=alice)
    path = f"/conversations/{conversation.json()['id']}/messages"
    posted = await backend.http.post(path, json={"content": "hi"}, headers=alice)
    assert posted.status_code == 201
    assert posted.json()["reply"]["status"] == "completed"
    items = (await backend.http.get(path, headers=alice)).json()["items"]
    assert [m["role"] for m in items] == ["user", "assistant"]
    assert items[0]["created_at"].endswith(("Z", "+00:00"))
