"""data-processor's stream consumer traces the events it handles, not its polls: a blocking
XREADGROUP that returns nothing (and the claim and prune calls of the same loop) exports no span,
where each idle poll used to be a trace of its own. The consumer runs as it ships (`manage
consume_events`, a process of its own) against a real Redis and PostgreSQL, exporting to the
real OTLP/HTTP receiver of observability/otlp.py."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis
from data_processor.config import EVENTS_STREAM
from harness.lifetime import bound_to_parent
from harness.servers import RedisServer
from observability.otlp import OtlpReceiver, Span

DEADLINE = 120.0
IDLE_POLLS = 10


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    with receiver.server:
        yield receiver


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not after {DEADLINE:.0f}s"
        time.sleep(0.1)


def polls(client: redis.Redis) -> int:
    """XREADGROUP calls the server has answered (its command statistics)."""
    stats = client.info("commandstats").get("cmdstat_xreadgroup", {})
    return int(stats.get("calls", 0)) if isinstance(stats, dict) else 0


def message_event(trace_id: str) -> dict[str, str]:
    """A message.created entry as backend's outbox relay writes it, carrying its trace."""
    return {
        "event_id": str(uuid.uuid4()),
        "type": "message.created",
        "conversation_id": str(uuid.uuid4()),
        "message_id": str(uuid.uuid4()),
        "user_id": str(uuid.uuid4()),
        "role": "user",
        "created_at": "2026-12-06T08:00:00+00:00",
        "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01",
    }


def consumer_spans(receiver: OtlpReceiver) -> list[Span]:
    return [s for s in receiver.snapshot() if s.service == "data-processor"]


def test_idle_polls_export_no_span_and_an_event_continues_its_trace(
    make_database: Callable[[], str], private_redis: RedisServer, receiver: OtlpReceiver
) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": make_database(),
        "REDIS_URL": private_redis.url(),
        "DJANGO_SECRET_KEY": f"test-only-{uuid.uuid4().hex}",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.server.url,
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # export within 0.1 s
    }
    manage = [sys.executable, "-m", "data_processor.manage"]
    subprocess.run([*manage, "migrate", "--noinput"], env=env, check=True, timeout=180)
    consume = [*manage, "consume_events", "--consumer", "traced-1", "--block-ms", "100"]
    client = redis.Redis.from_url(private_redis.url(), decode_responses=True)
    process = subprocess.Popen(bound_to_parent(consume), env=env)
    try:
        wait_for(lambda: polls(client) >= IDLE_POLLS, f"{IDLE_POLLS} idle polls")
        trace_id = secrets.token_hex(16)
        client.xadd(EVENTS_STREAM, message_event(trace_id))  # type: ignore[arg-type]
        wait_for(
            lambda: any(s.kind == "CONSUMER" for s in consumer_spans(receiver)),
            "the event's consumer span",
        )
        wait_for(lambda: polls(client) >= IDLE_POLLS * 2, "idle polls after the event")
    finally:
        process.send_signal(signal.SIGTERM)  # the provider's shutdown sends what is batched
        process.wait(timeout=60)
        client.close()

    spans = consumer_spans(receiver)
    (consumed,) = [s for s in spans if s.kind == "CONSUMER"]
    assert consumed.trace_id == trace_id, "the consumer's span continues the producer's trace"
    other_traces = {(s.name, s.trace_id) for s in spans if s.trace_id != trace_id}
    assert other_traces == set(), "idle polls exported traces of their own"
    below = [s for s in spans if s.parent_span_id == consumed.span_id]
    assert {s.attributes.get("db.system", s.attributes.get("db.system.name")) for s in below} >= {
        "postgresql",
        "redis",
    }, below
