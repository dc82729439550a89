"""Chat events from backend's outbox to data-processor, as the reliability tests drive and
count them: a producer storing messages with their events the way backend's API does, the
relay and consumer as processes, and the check that every stored event arrived once and was
acknowledged back.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

import psycopg
from backend.database import create_sync_engine
from backend.models import Conversation, Message, utcnow
from backend.outbox import record_message_created
from harness.lifetime import bound_to_parent
from sqlalchemy.orm import Session

CONVERSATIONS = 8
DELIVERY_TIMEOUT = 120.0
ACKNOWLEDGE_TIMEOUT = 60.0


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


def wait_until_every_event_counted_and_acknowledged(backend_db: str, stats_db: str) -> set[str]:
    """Every event in backend's outbox processed by data-processor (its processed-event rows
    are exactly the outbox's) and acknowledged back; returns the outbox's event ids."""
    stored = column(backend_db, "SELECT event_id FROM outbox")
    processed = "SELECT event_id FROM data_processor_processedevent"
    wait_until(
        lambda: column(stats_db, processed) == stored,
        DELIVERY_TIMEOUT,
        lambda: f"data-processor has {len(column(stats_db, processed))} of {len(stored)} events",
    )
    unacknowledged = "SELECT count(*) FROM outbox WHERE acknowledged_at IS NULL"
    wait_until(
        lambda: scalar(backend_db, unacknowledged) == 0,
        ACKNOWLEDGE_TIMEOUT,
        lambda: f"{scalar(backend_db, unacknowledged)} events never acknowledged",
    )
    return stored
