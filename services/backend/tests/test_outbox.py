"""message.created events: written with the message, published to the Redis Stream, never lost."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
from backend.models import Message, OutboxEvent
from backend.outbox import OutboxDrainer, ReplicationError
from backend.outbox import main as outbox_main
from backend_fakes import Backend, MakeBackend
from harness.appservers import AsgiServer
from harness.servers import RedisServer
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy import select, update

STREAM = "chat:events"
FIELDS = {
    "event_id", "type", "conversation_id", "message_id", "user_id", "role", "created_at",
    "published_at",
}  # fmt: skip


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _stream(redis_url: str) -> list[dict[str, str]]:
    client = redis.Redis.from_url(redis_url)
    try:
        entries = client.xrange(STREAM) or []
    finally:
        client.close()
    return [{_text(k): _text(v) for k, v in (fields or {}).items()} for _id, fields in entries]


async def _outbox(backend: Backend) -> list[OutboxEvent]:
    async with backend.runtime.sessions() as session:
        return list(await session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)))


async def _post(backend: Backend, headers: dict[str, str], *contents: str) -> str:
    conversation = await backend.http.post("/conversations", json={"title": "t"}, headers=headers)
    path = f"/conversations/{conversation.json()['id']}"
    for content in contents:
        response = await backend.http.post(
            f"{path}/messages", json={"content": content}, headers=headers
        )
        assert response.status_code == 201
    return path


async def _wait_for_stream(redis_url: str, count: int) -> list[dict[str, str]]:
    for _ in range(300):
        entries = _stream(redis_url)
        if len(entries) >= count:
            return entries
        await asyncio.sleep(0.05)
    return _stream(redis_url)


@pytest.fixture(params=["postgresql", "sqlite"])
def database(request: pytest.FixtureRequest, database_url: str, tmp_path: Path) -> str:
    return database_url if request.param == "postgresql" else f"sqlite:///{tmp_path}/backend.db"


async def test_crash_between_commit_and_publish_loses_no_event(
    make_backend: MakeBackend,
    ai_server: AsgiServer,
    alice: dict[str, str],
    redis_url: str,
    database: str,
) -> None:
    # The first process commits messages and their events, and dies before publishing any.
    first = await make_backend(ai_url=ai_server.url, database_url=database)
    await _post(first, alice, "one", "two")
    events = await _outbox(first)
    await first.aclose()
    assert len(events) == 4  # two user messages, two completed replies
    assert all(e.published_at is None for e in events)
    assert _stream(redis_url) == []

    # After the restart, the in-process drainer publishes every event exactly once.
    second = await make_backend(
        ai_url=ai_server.url, database_url=database, outbox_drain_interval_seconds=0.05
    )
    entries = await _wait_for_stream(redis_url, 4)
    await asyncio.sleep(0.3)  # a few more drain rounds: nothing may be sent twice
    entries = _stream(redis_url)
    assert sorted(e["event_id"] for e in entries) == sorted(str(e.event_id) for e in events)
    assert all(e.published_at is not None for e in await _outbox(second))


async def test_events_describe_their_messages(
    make_backend: MakeBackend, ai_server: AsgiServer, alice: dict[str, str], redis_url: str
) -> None:
    backend = await make_backend(ai_url=ai_server.url)
    await _post(backend, alice, "hello")
    assert await backend.runtime.drainer.drain() == 2  # type: ignore[union-attr]
    entries = _stream(redis_url)
    async with backend.runtime.sessions() as session:
        messages = {m.id: m for m in await session.scalars(select(Message))}
    assert [e["role"] for e in entries] == ["user", "assistant"]
    for entry in entries:
        assert set(entry) == FIELDS
        assert entry["type"] == "message.created"
        message = messages[uuid.UUID(entry["message_id"])]
        assert entry["conversation_id"] == str(message.conversation_id)
        assert entry["user_id"] == message.user_id
        assert entry["created_at"] == message.created_at.isoformat()
        assert entry["published_at"] >= entry["created_at"]
    assert await backend.runtime.drainer.drain() == 0  # type: ignore[union-attr]


async def test_events_carry_the_trace_of_the_request_that_wrote_them(
    make_backend: MakeBackend,
    ai_server: AsgiServer,
    alice: dict[str, str],
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    backend = await make_backend(ai_url=ai_server.url)
    # Tracing on for the request only (the app's own instrumentation stays off in-process): the
    # outbox row takes the current span's context, and the drainer sends it from the database.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    with TracerProvider().get_tracer("test").start_as_current_span("request") as span:
        await _post(backend, alice, "hello")
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT")
    await _post(backend, alice, "untraced")
    assert await backend.runtime.drainer.drain() == 4  # type: ignore[union-attr]
    entries = _stream(redis_url)
    context = span.get_span_context()
    expected = f"00-{context.trace_id:032x}-{context.span_id:016x}"
    # version-trace_id-parent_id-flags: the flags are the SDK's business.
    assert [e.get("traceparent", "")[:52] for e in entries] == [expected, expected, "", ""]
    assert all(set(e) - {"traceparent"} == FIELDS for e in entries)


async def test_crash_after_publish_before_marking_duplicates_by_event_id_only(
    make_backend: MakeBackend, ai_server: AsgiServer, alice: dict[str, str], redis_url: str
) -> None:
    backend = await make_backend(ai_url=ai_server.url)
    await _post(backend, alice, "a", "b")
    drainer = backend.runtime.drainer
    assert drainer is not None
    assert await drainer.drain() == 4
    # The state a crash after XADD but before the mark leaves: published, yet unmarked.
    async with backend.runtime.sessions() as session, session.begin():
        await session.execute(
            update(OutboxEvent).where(OutboxEvent.role == "user").values(published_at=None)
        )
    assert await drainer.drain() == 2
    entries = _stream(redis_url)
    assert len(entries) == 6  # at least once: the two user events went out twice
    by_id: dict[str, dict[str, Any]] = {}
    for entry in entries:
        by_id.setdefault(entry["event_id"], entry)
    assert len(by_id) == 4  # a consumer keeping the first of each event_id sees each once
    assert sorted(by_id) == sorted(str(e.event_id) for e in await _outbox(backend))


async def test_an_event_exists_exactly_when_its_message_has_content(
    make_backend: MakeBackend, stopped_ai: AsgiServer, alice: dict[str, str]
) -> None:
    backend = await make_backend(ai_url=stopped_ai.url)
    path = await _post(backend, alice, "first")
    events = await _outbox(backend)
    assert [e.role for e in events] == ["user"]  # the pending reply has no event yet

    stopped_ai.start()
    messages = (await backend.http.get(f"{path}/messages", headers=alice)).json()["items"]
    retry = f"{path}/messages/{messages[1]['id']}/retry"
    await backend.http.post(retry, headers=alice)
    await backend.http.post(retry, headers=alice)
    events = await _outbox(backend)
    assert [(e.role, str(e.message_id)) for e in events] == [
        ("user", messages[0]["id"]), ("assistant", messages[1]["id"]),
    ]  # fmt: skip


async def test_drainer_survives_redis_outage(
    make_backend: MakeBackend, ai_server: AsgiServer, alice: dict[str, str], private_redis: Any
) -> None:
    backend = await make_backend(
        ai_url=ai_server.url, redis_url=private_redis.url(), outbox_drain_interval_seconds=0.05
    )
    private_redis.stop()
    await _post(backend, alice, "while redis is down")  # still stored, still answered
    await asyncio.sleep(0.3)  # failed drain rounds are logged, not fatal
    assert all(e.published_at is None for e in await _outbox(backend))
    private_redis.start()
    entries = await _wait_for_stream(private_redis.url(), 2)
    assert len(entries) == 2


async def test_drain_command_line(
    make_backend: MakeBackend,
    ai_server: AsgiServer,
    alice: dict[str, str],
    redis_url: str,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    backend = await make_backend(ai_url=ai_server.url)
    await _post(backend, alice, "cli")
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url}
    run = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "backend.outbox"], env=env, capture_output=True,
        text=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "published 2 event(s)" in run.stdout
    assert len(_stream(redis_url)) == 2

    with pytest.raises(SystemExit) as usage:
        outbox_main(["--interval", "0"])
    assert usage.value.code == 2
    assert "--interval" in capsys.readouterr().err


async def test_a_batch_no_replica_confirmed_stays_in_the_outbox_until_one_does(
    make_backend: MakeBackend, ai_server: AsgiServer, alice: dict[str, str], private_redis: Any
) -> None:
    # A primary without its replica: WAIT 1 answers 0, so nothing counts as published.
    backend = await make_backend(
        ai_url=ai_server.url,
        redis_url=private_redis.url(),
        outbox_wait_replicas=1,
        outbox_wait_timeout_ms=50,
    )
    await _post(backend, alice, "held")
    drainer = backend.runtime.drainer
    assert drainer is not None
    with pytest.raises(ReplicationError, match="0 of 1 replica"):
        await drainer.drain_batch()
    assert [e.published_at for e in await _outbox(backend)] == [None, None]

    # The replica comes up: the next round sends the batch again and stamps it.
    replica = RedisServer(extra_settings=(f"replicaof 127.0.0.1 {private_redis.port}",))
    replica.start()
    try:
        assert await _drained_once_replicated(drainer) == 2
        assert all(e.published_at is not None for e in await _outbox(backend))
        assert len(_stream(replica.url())) >= 2  # the replica holds what was marked published
    finally:
        replica.destroy()


async def _drained_once_replicated(drainer: OutboxDrainer) -> int:
    """drain_batch until the replica is in sync and confirms (it needs a full sync first)."""
    async with asyncio.timeout(120):
        while True:
            try:
                return await drainer.drain_batch()
            except ReplicationError:
                await asyncio.sleep(0.05)
