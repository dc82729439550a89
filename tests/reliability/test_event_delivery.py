"""Issue 27.1: no chat event is lost when Redis restarts empty mid-stream.

Real processes end to end: backend's outbox relay (`python -m backend.outbox --loop`) and
data-processor's consumer (`manage consume_events`) against real PostgreSQL and a Redis server
of the test's own. The consumer is frozen (a slow consumer), so that events sit only in Redis,
then Redis is SIGKILLed and started again empty. Every event stored in the outbox must end up
counted once in data-processor's database and acknowledged back to the outbox.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

from backend.migrate import upgrade
from harness.servers import RedisServer

from reliability.delivery import (
    Producer,
    running,
    scalar,
    wait_until,
    wait_until_every_event_counted_and_acknowledged,
)

EVENTS = 400


def freeze(process: subprocess.Popen[bytes]) -> None:
    """SIGSTOP, and wait until the kernel reports the process stopped (state T)."""
    process.send_signal(signal.SIGSTOP)
    stat = Path(f"/proc/{process.pid}/stat")
    wait_until(
        lambda: stat.read_text().rsplit(")", 1)[1].split()[0] == "T", 10, lambda: "no SIGSTOP"
    )


def restart_empty(server: RedisServer) -> None:
    """SIGKILL Redis and start it again on the same port with nothing (no RDB, no AOF)."""
    assert server.process is not None
    server.process.kill()
    server.process.wait(timeout=30)
    server.process = None
    server.start()


def test_redis_restarting_empty_mid_stream_loses_no_event(
    make_database: Callable[[], str], private_redis: RedisServer
) -> None:
    backend_db, stats_db = make_database(), make_database()
    upgrade(backend_db)
    redis_url = private_redis.url()
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "DJANGO_SECRET_KEY": f"test-only-{uuid.uuid4().hex}",
        "OUTBOX_REDELIVER_AFTER_SECONDS": "2",
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
    published = "SELECT count(*) FROM outbox WHERE published_at IS NOT NULL"

    producer = Producer(backend_db, EVENTS)
    with (
        running(consumer_argv, stats_env) as consumer,
        running(relay_argv, {**env, "DATABASE_URL": backend_db}),
    ):
        producer.start()
        wait_until(
            lambda: scalar(stats_db, processed) >= 50, 120, lambda: "the consumer made no progress"
        )
        # A slow consumer: events pile up in Redis, sent but not yet consumed...
        freeze(consumer)
        held = scalar(stats_db, processed)
        wait_until(
            lambda: scalar(backend_db, published) >= held + 30,
            60,
            lambda: "the relay sent nothing while the consumer was frozen",
        )
        # ...and Redis loses them all: a SIGKILL, and back with nothing.
        restart_empty(private_redis)
        consumer.send_signal(signal.SIGCONT)
        producer.join(timeout=120)
        assert producer.error is None, repr(producer.error)
        assert producer.stored == EVENTS
        assert held < EVENTS, "the fault came after the stream had ended"

        stored = wait_until_every_event_counted_and_acknowledged(backend_db, stats_db)

    acknowledged = scalar(
        backend_db, "SELECT count(*) FROM outbox WHERE acknowledged_at IS NOT NULL"
    )
    counted = scalar(stats_db, "SELECT sum(message_count) FROM data_processor_conversationactivity")
    assert len(stored) == EVENTS
    assert acknowledged == EVENTS  # acknowledged vs stored
    assert scalar(stats_db, processed) == EVENTS
    assert counted == EVENTS  # redelivered events were not counted twice
