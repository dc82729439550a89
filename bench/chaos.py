"""`python -m bench.chaos` (or `make chaos`): load plus one fault at a time on the local app.

The local app (ci.localapp, supervised as `make run` supervises it) runs on loopback with a
PostgreSQL and a Redis of its own. For each fault, CLIENTS threads post chat messages (or upload
files) for DURATION seconds through the edge; the fault strikes FAULT_AT seconds in. Printed per
fault: requests, answers by status, recovery time (from the fault to the first success after the
last failure), and what was acknowledged (2xx) against what the app has afterwards: found (the
acknowledged items the app lists), stored (all it lists: a write whose answer was lost counts
here only), and messages counted by data-processor from backend's events (should equal stored).
Bounded: a few clients, seconds of load, loopback only.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from ci.localapp.stack import LocalStack
from ci.localapp.supervise import RestartPolicy, supervise
from e2e.api import User, sign_up
from harness.servers import PostgresServer, RedisServer

from bench.stack import local_app

CLIENTS = 4
DURATION = 20.0
FAULT_AT = 4.0
POSTGRES_DOWN_SECONDS = 10.0
SETTLE_TIMEOUT = 120.0
NO_LIMITS = {
    "auth": {"AUTH_LOGIN_LIMIT_PER_IP": "1000000", "AUTH_LOGIN_LIMIT_PER_ACCOUNT": "1000000"},
    "backend": {"MESSAGE_RATE_LIMIT": "1000000", "OUTBOX_REDELIVER_AFTER_SECONDS": "5"},
}
UPLOAD = b"chaos upload\n" * 1024


@dataclass
class Load:
    """What the clients saw: every answer's status (0: no answer) and when."""

    statuses: Counter[int] = field(default_factory=Counter)
    acknowledged: list[str] = field(default_factory=list)
    answers: list[tuple[float, bool]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, status: int, item_id: str | None) -> None:
        with self.lock:
            self.statuses[status] += 1
            self.answers.append((time.monotonic(), 200 <= status < 300))
            if item_id is not None:
                self.acknowledged.append(item_id)

    def recovery_seconds(self, fault_at: float) -> float:
        failures = [t for t, ok in self.answers if not ok and t >= fault_at]
        if not failures:
            return 0.0
        after = [t for t, ok in sorted(self.answers) if ok and t > max(failures)]
        return (after[0] - fault_at) if after else float("inf")


def post_messages(user: User, stop: threading.Event, load: Load) -> None:
    conversation = user.client.post("/api/chat/conversations", json={"title": "chaos"})
    path = f"/api/chat/conversations/{conversation.json()['id']}/messages"
    number = 0
    while not stop.is_set():
        number += 1
        try:
            answer = user.client.post(path, json={"content": f"chaos {number}"}, timeout=15)
            item = answer.json()["message"]["id"] if answer.status_code == 201 else None
            load.record(answer.status_code, item)
            if item is None:
                stop.wait(0.2)  # a failing app is not hammered
        except (httpx.HTTPError, ValueError):
            load.record(0, None)
            stop.wait(0.2)


def upload_files(user: User, stop: threading.Event, load: Load) -> None:
    while not stop.is_set():
        try:
            files = {"file": ("chaos.txt", UPLOAD, "text/plain")}
            answer = user.client.post("/api/media/files", files=files, timeout=15)
            item = answer.json()["id"] if answer.status_code == 201 else None
            load.record(answer.status_code, item)
            if item is None:
                stop.wait(0.2)
        except (httpx.HTTPError, ValueError):
            load.record(0, None)
            stop.wait(0.2)


@dataclass
class Fault:
    name: str
    work: Callable[[User, threading.Event, Load], None]
    strike: Callable[[], None]


def run_fault(edge: str, fault: Fault) -> dict[str, object]:
    users = [sign_up(edge, prefix="chaos") for _ in range(CLIENTS)]
    load = Load()
    stop = threading.Event()
    threads = [threading.Thread(target=fault.work, args=(u, stop, load)) for u in users]
    for thread in threads:
        thread.start()
    time.sleep(FAULT_AT)  # the fault's moment in the scenario, not a wait for a condition
    struck = time.monotonic()
    fault.strike()
    stop.wait(max(0.0, DURATION - FAULT_AT - (time.monotonic() - struck)))
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    found, stored, counted = settle(users, fault.work, set(load.acknowledged))
    for user in users:
        user.client.close()
    return {
        "fault": fault.name,
        "requests": sum(load.statuses.values()),
        "statuses": dict(sorted(load.statuses.items())),
        "recovery_s": load.recovery_seconds(struck),
        "acknowledged": len(load.acknowledged),
        "found": found,
        "stored": stored,
        "counted": counted,
    }


def settle(
    users: list[User], work: Callable[[User, threading.Event, Load], None], acked: set[str]
) -> tuple[int, int, int | None]:
    """(acknowledged items the app lists, all items it lists, messages data-processor counted
    or None for files), waiting for the counts to converge (events flow asynchronously)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        everything = [listed(u, work) for u in users]
        found = sum(len(items & acked) for items in everything)
        stored = sum(len(items) for items in everything)
        counted = None
        if work is post_messages:
            counted = sum(stats_total(u) for u in users)
        done = found >= len(acked) and (counted is None or counted == stored)
        if done or time.monotonic() > deadline:
            return found, stored, counted
        time.sleep(1)


def listed(user: User, work: Callable[[User, threading.Event, Load], None]) -> set[str]:
    if work is upload_files:
        return {f["id"] for f in user.client.get("/api/media/files").json()["items"]}
    ids: set[str] = set()
    for conversation in user.client.get("/api/chat/conversations").json()["items"]:
        path = f"/api/chat/conversations/{conversation['id']}/messages?limit=100"
        while path:
            page = user.client.get(path).json()
            ids |= {m["id"] for m in page["items"] if m["role"] == "user"}
            cursor = page.get("next_cursor")
            base = f"/api/chat/conversations/{conversation['id']}/messages?limit=100"
            path = f"{base}&cursor={cursor}" if cursor else ""
    return ids


def stats_total(user: User) -> int:
    answer = user.client.get("/api/stats/stats/me")
    return int(answer.json()["total_messages"]) if answer.status_code == 200 else -1


def kill_process(stack: LocalStack, name: str) -> Callable[[], None]:
    def strike() -> None:
        process = next(p for p in stack.processes if p.name == name)
        assert process.popen is not None
        os.killpg(process.popen.pid, signal.SIGKILL)

    return strike


def restart_redis_empty(server: RedisServer) -> Callable[[], None]:
    def strike() -> None:
        assert server.process is not None
        server.process.kill()
        server.process.wait(timeout=30)
        server.process = None
        server.start()

    return strike


def stop_postgres(server: PostgresServer) -> Callable[[], None]:
    def strike() -> None:
        server.stop()
        time.sleep(POSTGRES_DOWN_SECONDS)  # the outage's length, part of the fault
        server.start()

    return strike


def progress(line: str) -> None:
    print(f"chaos: {line}", file=sys.stderr, flush=True)


def render(rows: list[dict[str, object]]) -> str:
    lines = [
        "| fault | requests | answers by status (0: none) | recovery | acknowledged | found "
        "| stored | counted by data-processor |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        by_status = row["statuses"]
        assert isinstance(by_status, dict)
        statuses = ", ".join(f"{code}: {n}" for code, n in by_status.items())
        counted = "-" if row["counted"] is None else row["counted"]
        lines.append(
            f"| {row['fault']} | {row['requests']} | {statuses} | {row['recovery_s']:.1f} s "
            f"| {row['acknowledged']} | {row['found']} | {row['stored']} | {counted} |"
        )
    return "\n".join(lines)


def main() -> int:
    with local_app(NO_LIMITS) as app:
        stop = threading.Event()
        policy = RestartPolicy(first_delay=0.5, max_restarts=20)
        watcher = threading.Thread(
            target=supervise, args=(app.stack.processes, stop, policy, progress), daemon=True
        )
        watcher.start()
        try:
            faults = [
                Fault("backend kill -9", post_messages, kill_process(app.stack, "backend")),
                Fault("Redis restarted empty", post_messages, restart_redis_empty(app.redis)),
                Fault(
                    f"PostgreSQL stopped {POSTGRES_DOWN_SECONDS:.0f} s",
                    post_messages,
                    stop_postgres(app.postgres),
                ),
                Fault(
                    "media-storage kill -9", upload_files, kill_process(app.stack, "media-storage")
                ),
            ]
            rows = []
            for fault in faults:
                progress(f"{fault.name} ...")
                rows.append(run_fault(app.edge, fault))
        finally:
            stop.set()  # no restarts while the app stops
    print(f"{CLIENTS} clients, {DURATION:.0f} s of load per fault, the fault at {FAULT_AT:.0f} s\n")
    print(render(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
