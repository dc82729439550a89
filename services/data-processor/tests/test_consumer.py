"""The consumer loop against real Redis Streams and PostgreSQL, driven step by step."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any, cast

import pytest
import redis
from data_processor.consumer import ConsumerOptions, EventConsumer
from data_processor.events import apply_event, parse_event
from data_processor.models import DailyMessageCount, ProcessedEvent
from django import db
from django.db import connections
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

STREAM = "chat:events"
GROUP = "data-processor"


def publish(
    client: redis.Redis, user: uuid.UUID, *, event_id: str | None = None, **extra: str
) -> str:
    fields: dict[Any, Any] = {
        **extra,
        "event_id": event_id or str(uuid.uuid4()),
        "type": "message.created",
        "conversation_id": str(uuid.uuid4()),
        "message_id": str(uuid.uuid4()),
        "user_id": str(user),
        "role": "user",
        "created_at": "2026-11-25T10:00:00+00:00",
        "published_at": "2026-11-25T10:00:01+00:00",
    }
    return cast(bytes, client.xadd(STREAM, fields)).decode()


def consumer(client: redis.Redis, name: str, **overrides: Any) -> EventConsumer:
    options = ConsumerOptions(stream=STREAM, group=GROUP, consumer=name, block_ms=50)
    for key, value in overrides.items():
        setattr(options, key, value)
    worker = EventConsumer(client, options)
    worker.ensure_group()
    return worker


def user_total(user: uuid.UUID) -> int:
    return sum(DailyMessageCount.objects.filter(user_id=user).values_list("count", flat=True))


def pending_count(client: redis.Redis) -> int:
    return int(client.xpending(STREAM, GROUP)["pending"])


def drain(worker: EventConsumer, rounds: int = 50) -> None:
    for _ in range(rounds):
        if worker.step() == 0:
            return


def test_consumes_every_event_and_acknowledges_it(stats_db: str, redis_client: redis.Redis) -> None:
    users = [uuid.uuid4() for _ in range(3)]
    published = Counter[uuid.UUID]()
    for index in range(45):
        user = users[index % 3]
        publish(redis_client, user)
        published[user] += 1
    drain(consumer(redis_client, "c1", batch_size=10))
    assert {user: user_total(user) for user in users} == dict(published)
    assert pending_count(redis_client) == 0
    assert ProcessedEvent.objects.count() == 45


def test_events_published_before_the_group_existed_are_consumed(
    stats_db: str, redis_client: redis.Redis
) -> None:
    user = uuid.uuid4()
    for _ in range(3):
        publish(redis_client, user)
    drain(consumer(redis_client, "late-starter"))
    assert user_total(user) == 3


def test_redelivered_event_counts_once(stats_db: str, redis_client: redis.Redis) -> None:
    user = uuid.uuid4()
    # The producer retried its publish: two stream entries carry one event id.
    publish(redis_client, user, event_id="evt-1")
    publish(redis_client, user, event_id="evt-1")
    worker = consumer(redis_client, "c1")
    drain(worker)
    assert user_total(user) == 1
    assert pending_count(redis_client) == 0


def test_crash_between_commit_and_ack_is_not_double_counted(
    stats_db: str, redis_client: redis.Redis
) -> None:
    user = uuid.uuid4()
    entry_id = publish(redis_client, user)
    # A consumer read the entry and committed, then died before XACK.
    redis_client.xgroup_create(STREAM, GROUP, id="0")
    delivered: Any = redis_client.xreadgroup(GROUP, "c1", {STREAM: ">"}, count=1)
    fields = {k.decode(): v.decode() for k, v in delivered[0][1][0][1].items()}
    apply_event(parse_event(fields), entry_id)
    assert pending_count(redis_client) == 1
    # Restarted under the same name, it first retries its own pending entries.
    drain(consumer(redis_client, "c1"))
    assert user_total(user) == 1
    assert pending_count(redis_client) == 0


def test_pending_entries_of_a_dead_consumer_are_claimed_after_the_timeout(
    stats_db: str, redis_client: redis.Redis
) -> None:
    user = uuid.uuid4()
    for _ in range(5):
        publish(redis_client, user)
    redis_client.xgroup_create(STREAM, GROUP, id="0")
    # "dead" took all five and vanished without acknowledging.
    redis_client.xreadgroup(GROUP, "dead", {STREAM: ">"}, count=5)
    survivor = consumer(redis_client, "survivor", claim_idle_ms=300)
    survivor.step()
    assert user_total(user) == 0, "claimed before the idle timeout"
    time.sleep(0.4)
    drain(survivor)
    assert user_total(user) == 5
    assert pending_count(redis_client) == 0
    assert survivor.metrics.claimed._value.get() == 5


def test_invalid_events_are_dead_lettered_not_retried(
    stats_db: str, redis_client: redis.Redis
) -> None:
    user = uuid.uuid4()
    redis_client.xadd(STREAM, {"event_id": "bad-1", "type": "message.created", "user_id": "x"})
    publish(redis_client, user)
    drain(consumer(redis_client, "c1"))
    assert user_total(user) == 1
    assert pending_count(redis_client) == 0
    dead: Any = redis_client.xrange(STREAM + ":dead")
    assert len(dead) == 1
    assert dead[0][1][b"event_id"] == b"bad-1"
    assert b"lacks field" in dead[0][1][b"dead_reason"]


def test_database_outage_leaves_entries_pending_and_they_are_retried(
    stats_db: str, redis_client: redis.Redis
) -> None:
    user = uuid.uuid4()
    for _ in range(3):
        publish(redis_client, user)
    worker = consumer(redis_client, "c1")
    real_name = connections["default"].settings_dict["NAME"]
    connections["default"].close()
    connections["default"].settings_dict["NAME"] = "no_such_database"
    try:
        with pytest.raises(db.Error, match="no_such_database"):
            worker.step()
    finally:
        connections["default"].close()
        connections["default"].settings_dict["NAME"] = real_name
    assert pending_count(redis_client) == 3, "nothing may be acknowledged without a commit"
    drain(worker)
    assert user_total(user) == 3
    assert pending_count(redis_client) == 0


def test_idle_consumers_without_pending_entries_are_pruned(
    stats_db: str, redis_client: redis.Redis
) -> None:
    publish(redis_client, uuid.uuid4())
    redis_client.xgroup_create(STREAM, GROUP, id="0")
    redis_client.xreadgroup(GROUP, "holds-one", {STREAM: ">"}, count=1)  # never acknowledged
    redis_client.xreadgroup(GROUP, "long-gone", {STREAM: ">"}, count=1)  # got nothing
    time.sleep(0.1)
    survivor = consumer(redis_client, "survivor", prune_idle_ms=50, claim_idle_ms=60_000)
    survivor.step()
    names = {entry["name"] for entry in redis_client.xinfo_consumers(STREAM, GROUP)}
    assert names == {b"holds-one", b"survivor"}


def test_an_entry_that_always_fails_is_dead_lettered_after_max_deliveries(
    stats_db: str, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    import data_processor.consumer as consumer_module
    from data_processor.events import apply_event as real_apply

    def apply_or_crash(event: Any, stream_id: str) -> Any:
        if event.event_id == "poison":
            raise RuntimeError("a bug this event triggers")
        return real_apply(event, stream_id)

    monkeypatch.setattr(consumer_module, "apply_event", apply_or_crash)
    user = uuid.uuid4()
    publish(redis_client, user, event_id="poison")
    publish(redis_client, user)
    worker = consumer(redis_client, "c1", max_attempts=3)
    failures = 0
    for _ in range(10):
        try:
            worker.step()
        except RuntimeError:
            failures += 1
    assert failures == 3, "retried up to max_attempts, then parked"
    assert user_total(user) == 1, "the entry behind the poison one is processed"
    assert pending_count(redis_client) == 0
    dead: Any = redis_client.xrange(STREAM + ":dead")
    assert [entry[1][b"event_id"] for entry in dead] == [b"poison"]
    assert dead[0][1][b"dead_reason"] == b"handling failed 3 times"


def test_run_recreates_a_vanished_group_and_stops_on_request(
    stats_db: str, redis_client: redis.Redis
) -> None:
    """As `consume_events` runs it: a loop in a thread, stopped through its event."""
    user = uuid.uuid4()
    worker = consumer(redis_client, "looping", claim_idle_ms=60_000)
    runner = threading.Thread(target=worker.run)
    runner.start()
    try:
        publish(redis_client, user)
        wait_for(lambda: user_total(user) == 1)
        # Redis lost its data: the stream (and with it the group) is gone, then events resume.
        redis_client.delete(STREAM)
        publish(redis_client, user)
        wait_for(lambda: user_total(user) == 2)
    finally:
        worker.stop.set()
        runner.join(timeout=30)
    assert not runner.is_alive()
    assert pending_count(redis_client) == 0


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


@pytest.fixture
def finished_spans(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    """Tracing on, with this process's spans kept in memory (the global provider is set once
    per process, so a provider already there gets the exporter instead)."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


def test_an_event_continues_the_trace_of_the_request_that_wrote_it(
    stats_db: str, redis_client: redis.Redis, finished_spans: InMemorySpanExporter
) -> None:
    request = TracerProvider().get_tracer("backend").start_span("POST /messages")
    context = request.get_span_context()
    traceparent = f"00-{context.trace_id:032x}-{context.span_id:016x}-01"
    user = uuid.uuid4()
    publish(redis_client, user, traceparent=traceparent)
    publish(redis_client, user)  # an event without a trace starts one of its own
    drain(consumer(redis_client, "c1"))
    assert user_total(user) == 2
    spans = [s for s in finished_spans.get_finished_spans() if s.name == "consume message.created"]
    assert len(spans) == 2
    traced, untraced = spans
    assert traced.kind is trace.SpanKind.CONSUMER
    assert traced.context is not None
    assert traced.context.trace_id == context.trace_id
    assert traced.parent is not None
    assert traced.parent.span_id == context.span_id
    assert untraced.parent is None
