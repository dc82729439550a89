"""A message the server could not store (PostgreSQL down: 503) costs the sender no budget:
clients retrying through an outage are not locked out (429) once it is over."""

from __future__ import annotations

from backend_fakes import MakeBackend
from harness.appservers import AsgiServer
from harness.servers import PostgresServer


async def test_messages_refused_during_an_outage_cost_no_budget(
    make_backend: MakeBackend,
    ai_server: AsgiServer,
    alice: dict[str, str],
    private_postgres: PostgresServer,
) -> None:
    backend = await make_backend(
        ai_url=ai_server.url, database_url=private_postgres.url(), message_rate_limit=3
    )
    created = await backend.http.post("/conversations", json={"title": "o"}, headers=alice)
    path = f"/conversations/{created.json()['id']}/messages"

    private_postgres.stop()
    during = [
        (await backend.http.post(path, json={"content": f"try {i}"}, headers=alice)).status_code
        for i in range(5)
    ]
    assert during == [503] * 5
    private_postgres.start()

    after = [
        (await backend.http.post(path, json={"content": f"again {i}"}, headers=alice)).status_code
        for i in range(4)
    ]
    assert after == [201, 201, 201, 429]  # the whole budget of 3, and no more
