"""Issue 30.4: Redis (Valkey) with Sentinel fails over under load and loses no event.

Real processes end to end: a Redis primary, one replica and three Sentinels (tests/harness/
sentinel.py), backend's outbox relay (`python -m backend.outbox --loop`, waiting for one replica
per batch) and data-processor's consumer (`manage consume_events`), both finding the primary
through Sentinel only, and a rate limiter hitting Redis all along. The primary is SIGKILLed
mid-stream; Sentinel promotes the replica; limiter, relay and consumer carry on against it.
Every event stored in the outbox must be counted once by data-processor and acknowledged back.
The figures (promotion, limiter and consumer recovery) are printed: docs/operations quotes them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable

from backend.migrate import upgrade
from harness.sentinel import SentinelGroup
from servicekit.ratelimit import RateLimiter
from servicekit.redisconn import RedisTarget, parse_sentinels, redis_client

from reliability.delivery import (
    Producer,
    running,
    scalar,
    wait_until,
    wait_until_every_event_counted_and_acknowledged,
)

EVENTS = 400


class LimiterLoad(threading.Thread):
    """Hits a limit it never reaches, failing closed: a refusal means Redis did not answer."""

    def __init__(self, target: RedisTarget) -> None:
        super().__init__(daemon=True)
        self.limiter = RateLimiter(redis_client(target, timeout=0.5), fail_open=False)
        self.stop = threading.Event()
        self.allowed = 0
        self.refused_at: list[float] = []
        self.last_allowed_at = 0.0

    def run(self) -> None:
        while not self.stop.is_set():
            if self.limiter.hit("load", limit=1_000_000, period=60).allowed:
                self.allowed += 1
                self.last_allowed_at = time.monotonic()
            else:
                self.refused_at.append(time.monotonic())
            time.sleep(0.01)


def test_primary_killed_under_load_sentinel_promotes_and_nothing_is_lost(
    make_database: Callable[[], str], sentinel_group: SentinelGroup
) -> None:
    backend_db, stats_db = make_database(), make_database()
    upgrade(backend_db)
    env = {
        **{k: v for k, v in os.environ.items() if k != "REDIS_URL"},
        "REDIS_SENTINELS": sentinel_group.addresses(),
        "REDIS_SENTINEL_MASTER": sentinel_group.master,
        "DJANGO_SECRET_KEY": f"test-only-{uuid.uuid4().hex}",
        "OUTBOX_REDELIVER_AFTER_SECONDS": "2",
        "OUTBOX_WAIT_REPLICAS": "1",
        "OUTBOX_WAIT_TIMEOUT_MS": "500",
    }
    stats_env = {**env, "DATABASE_URL": stats_db}
    migrate = [sys.executable, "-m", "data_processor.manage", "migrate", "--noinput"]
    subprocess.run(migrate, env=stats_env, check=True, timeout=180, stdout=subprocess.DEVNULL)
    consumer_argv = [
        sys.executable, "-m", "data_processor.manage", "consume_events",
        "--consumer", "stats-1", "--block-ms", "200", "--claim-idle-ms", "1000",
    ]  # fmt: skip
    relay_argv = [sys.executable, "-m", "backend.outbox", "--loop", "--interval", "0.1"]
    processed = "SELECT count(*) FROM data_processor_processedevent"
    target = RedisTarget(sentinels=parse_sentinels(sentinel_group.addresses()), master="chat")

    producer = Producer(backend_db, EVENTS)
    load = LimiterLoad(target)
    with (
        running(consumer_argv, stats_env),
        running(relay_argv, {**env, "DATABASE_URL": backend_db}),
    ):
        producer.start()
        load.start()
        wait_until(
            lambda: scalar(stats_db, processed) >= 50, 120, lambda: "the consumer made no progress"
        )
        old_port = sentinel_group.primary_port()
        assert old_port is not None
        sentinel_group.kill_primary()
        killed_at = time.monotonic()
        held = scalar(stats_db, processed)
        promotion = sentinel_group.wait_for_promotion(old_port)
        wait_until(
            lambda: load.last_allowed_at > killed_at + promotion,
            60,
            lambda: "the limiter never reached the promoted primary",
        )
        limiter_back = load.last_allowed_at - killed_at
        wait_until(
            lambda: scalar(stats_db, processed) > held,
            120,
            lambda: "the consumer made no progress after the failover",
        )
        consumer_back = time.monotonic() - killed_at
        producer.join(timeout=120)
        assert producer.error is None, repr(producer.error)
        assert producer.stored == EVENTS
        assert held < EVENTS, "the fault came after the stream had ended"

        stored = wait_until_every_event_counted_and_acknowledged(backend_db, stats_db)
        load.stop.set()
        load.join(timeout=30)

    acknowledged = scalar(
        backend_db, "SELECT count(*) FROM outbox WHERE acknowledged_at IS NOT NULL"
    )
    counted = scalar(stats_db, "SELECT sum(message_count) FROM data_processor_conversationactivity")
    refused = [t for t in load.refused_at if t >= killed_at]
    print(
        f"\nfailover: replica promoted {promotion:.1f}s after kill -9 of the primary; "
        f"limiter answering again after {limiter_back:.1f}s ({len(refused)} refusals); "
        f"consumer counting again after {consumer_back:.1f}s; "
        f"{acknowledged}/{EVENTS} events acknowledged, {scalar(stats_db, processed)} consumed"
    )
    assert sentinel_group.primary_port() not in (old_port, None)
    assert len(stored) == EVENTS
    assert acknowledged == EVENTS  # acknowledged vs stored
    assert scalar(stats_db, processed) == EVENTS  # consumed vs stored: 0 lost
    assert counted == EVENTS  # redelivered events were not counted twice
    assert load.allowed > 0
