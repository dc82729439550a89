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
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import psycopg
from backend.database import create_sync_engine
from backend.migrate import upgrade
from backend.models import Conversation, Message, utcnow
from backend.outbox import record_message_created
from harness.lifetime import bound_to_parent
from harness.servers import RedisServer
from sqlalchemy.orm import Session

EVENTS = 400
CONVERSATIONS = 8


def wait_until(condition: Callable[[], bool], timeout: float, message: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(message())


@contextmanager
def running(argv: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(bound_to_parent(argv), env=env)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)
            process.kill()
            process.wait(timeout=30)


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


class Producer(threading.Thread):
    """Stores user messages with their events the way backend's API does, at a steady pace."""

    def __init__(self, database_url: str, count: int) -> None:
        super().__init__(daemon=True)
        self.database_url = database_url
        self.count = count
        self.stored = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        engine = create_sync_engine(self.database_url)
        try:
            user_id = str(uuid.uuid4())  # auth's user ids are UUIDs
            conversations = [uuid.uuid4() for _ in range(CONVERSATIONS)]
            with Session(engine) as session, session.begin():
                for conversation_id in conversations:
                    session.add(Conversation(id=conversation_id, user_id=user_id, title="t"))
            for index in range(self.count):
                with Session(engine) as session, session.begin():
                    message = Message(
                        conversation_id=conversations[index % CONVERSATIONS],
                        user_id=user_id,
                        role="user",
                        content=f"message {index}",
                        status="completed",
                        created_at=utcnow(),
                    )
                    session.add(message)
                    session.flush()
                    record_message_created(cast(Any, session), message)
                self.stored += 1
                time.sleep(0.01)
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.error = exc
        finally:
            engine.dispose()


def scalar(url: str, query: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(query).fetchone()
    return int(row[0] if row and row[0] is not None else 0)


def column(url: str, query: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {str(row[0]) for row in conn.execute(query)}


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

        stored = column(backend_db, "SELECT event_id FROM outbox")
        wait_until(
            lambda: (
                column(stats_db, "SELECT event_id FROM data_processor_processedevent") == stored
            ),
            120,
            lambda: f"data-processor has {scalar(stats_db, processed)} of {len(stored)} events",
        )
        unacknowledged = "SELECT count(*) FROM outbox WHERE acknowledged_at IS NULL"
        wait_until(
            lambda: scalar(backend_db, unacknowledged) == 0,
            60,
            lambda: f"{scalar(backend_db, unacknowledged)} events never acknowledged",
        )

    acknowledged = scalar(
        backend_db, "SELECT count(*) FROM outbox WHERE acknowledged_at IS NOT NULL"
    )
    counted = scalar(stats_db, "SELECT sum(message_count) FROM data_processor_conversationactivity")
    assert len(stored) == EVENTS
    assert acknowledged == EVENTS  # acknowledged vs stored
    assert scalar(stats_db, processed) == EVENTS
    assert counted == EVENTS  # redelivered events were not counted twice
