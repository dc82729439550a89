"""The real management command in a subprocess: SIGKILL mid-stream, restart, SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
from data_processor.models import DailyMessageCount, ProcessedEvent
from harness.lifetime import bound_to_parent

STREAM = "chat:events"
GROUP = "data-processor"
DAYS = ("2026-11-23", "2026-11-24", "2026-11-25")


def start_consumer(
    env: dict[str, str], name: str, claim_idle_ms: int = 1000
) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "data_processor.manage", "consume_events"]
    options = ["--consumer", name, "--batch-size", "10", "--block-ms", "200"]
    return subprocess.Popen(
        bound_to_parent([*command, *options, "--claim-idle-ms", str(claim_idle_ms)]),
        env=env,
        stdout=subprocess.DEVNULL,
    )


@contextmanager
def stopped_at_end(process: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def wait_until(condition: object, timeout: float, message: str) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(message)


class Publisher(threading.Thread):
    """Publishes message.created events at a steady pace, remembering what it sent."""

    def __init__(self, client: redis.Redis, count: int) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.count = count
        self.users = [uuid.uuid4() for _ in range(4)]
        self.expected: Counter[tuple[str, str]] = Counter()

    def run(self) -> None:
        for index in range(self.count):
            user, day = str(self.users[index % 4]), DAYS[index % 3]
            event_id = str(uuid.uuid4())
            created = f"{day}T12:00:00+00:00"
            fields: dict[Any, Any] = {
                "event_id": event_id,
                "type": "message.created",
                "conversation_id": str(uuid.uuid4()),
                "message_id": str(uuid.uuid4()),
                "user_id": user,
                "role": "user",
                "created_at": created,
                "published_at": created,
            }
            self.client.xadd(STREAM, fields)
            self.expected[(user, day)] += 1
            if index % 3 == 0:  # the producer also retries now and then: same event id again
                self.client.xadd(STREAM, fields)
            time.sleep(0.002)


def pending_of(client: redis.Redis, consumer: str) -> int:
    consumers = {e["name"].decode(): e["pending"] for e in client.xinfo_consumers(STREAM, GROUP)}
    return int(consumers.get(consumer, 0))


def freeze(process: subprocess.Popen[bytes]) -> None:
    """SIGSTOP, and wait until the kernel reports the process stopped (state T)."""
    process.send_signal(signal.SIGSTOP)
    stat = Path(f"/proc/{process.pid}/stat")
    wait_until(lambda: stat.read_text().rsplit(")", 1)[1].split()[0] == "T", 10, "no SIGSTOP")


def kill_while_holding_entries(
    process: subprocess.Popen[bytes], client: redis.Redis, consumer: str
) -> None:
    """SIGKILL the consumer at a moment it holds unacknowledged entries.

    It is frozen before its pending count is read, so it cannot acknowledge in between: the
    kill always orphans entries and the claim path is always exercised.
    """
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        freeze(process)
        if pending_of(client, consumer) > 0:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            return
        process.send_signal(signal.SIGCONT)
        time.sleep(0.005)
    raise AssertionError(f"{consumer} never held an unacknowledged entry to orphan")


def counted() -> Counter[tuple[str, str]]:
    rows = DailyMessageCount.objects.values_list("user_id", "day", "count")
    return Counter({(str(user), day.isoformat()): count for user, day, count in rows})


def test_consumer_killed_mid_stream_loses_nothing_and_double_counts_nothing(
    subprocess_env: dict[str, str], redis_client: redis.Redis
) -> None:
    publisher = Publisher(redis_client, count=600)
    first = start_consumer(subprocess_env, "consumer-a")
    with stopped_at_end(first):
        publisher.start()
        wait_until(lambda: ProcessedEvent.objects.count() >= 100, 60, "consumer-a made no progress")
        kill_while_holding_entries(first, redis_client, "consumer-a")
    killed_at = ProcessedEvent.objects.count()
    assert killed_at < 600, "the kill came too late to be mid-stream"
    # consumer-a never comes back: its pending entries must be claimed by consumer-b.
    second = start_consumer(subprocess_env, "consumer-b", claim_idle_ms=500)
    with stopped_at_end(second):
        publisher.join(timeout=60)
        wait_until(
            lambda: (
                ProcessedEvent.objects.count() == 600
                and int(redis_client.xpending(STREAM, GROUP)["pending"]) == 0
            ),
            90,
            "not every event was processed and acknowledged after the restart",
        )
        assert counted() == publisher.expected
        assert sum(counted().values()) == 600
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=20) == 0


def test_sigterm_finishes_the_batch_at_hand_and_exits_cleanly(
    subprocess_env: dict[str, str], redis_client: redis.Redis
) -> None:
    publisher = Publisher(redis_client, count=300)
    process = start_consumer(subprocess_env, "graceful")
    with stopped_at_end(process):
        publisher.start()
        wait_until(lambda: ProcessedEvent.objects.count() >= 30, 60, "no progress")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    publisher.join(timeout=60)
    consumers = {
        entry["name"].decode(): entry["pending"]
        for entry in redis_client.xinfo_consumers(STREAM, GROUP)
    }
    assert consumers == {"graceful": 0}, "a graceful stop leaves nothing unacknowledged"
    done = ProcessedEvent.objects.count()
    assert 30 <= done < 300
    # What it acknowledged is exactly what it committed.
    assert sum(counted().values()) == done
