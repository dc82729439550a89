"""Load on the local app through its edge, as users make it, and what the app keeps of it.

Workers post chat messages (backend), upload files (media-storage), register accounts (auth)
or read statistics (data-processor), each recording every answer's status and when; the writes
acknowledged (2xx) are then looked up again: found, or lost. `make chaos` (bench/chaos.py) and
the failover tests (tests/reliability) use the same workers and counts.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from e2e.api import PASSWORD, client_for, unique_username

UPLOAD = b"chaos upload\n" * 1024
SETTLE_TIMEOUT = 120.0


@dataclass
class Load:
    """What the clients saw: every answer's status (0: none) and when; the writes acknowledged
    (2xx) by id, with the moment of their answer."""

    statuses: Counter[int] = field(default_factory=Counter)
    acknowledged: dict[str, float] = field(default_factory=dict)
    answers: list[tuple[float, bool]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, status: int, item_id: str | None) -> None:
        with self.lock:
            now = time.monotonic()
            self.statuses[status] += 1
            self.answers.append((now, 200 <= status < 300))
            if item_id is not None:
                self.acknowledged[item_id] = now

    def recovery_seconds(self, fault_at: float) -> float:
        """From the fault to the first success after the last failure (0: nothing failed)."""
        with self.lock:
            answers = sorted(self.answers)
        failures = [t for t, ok in answers if not ok and t >= fault_at]
        if not failures:
            return 0.0
        after = [t for t, ok in answers if ok and t > max(failures)]
        return (after[0] - fault_at) if after else float("inf")

    def successes_after(self, moment: float) -> int:
        with self.lock:
            return sum(1 for t, ok in self.answers if ok and t > moment)

    def acknowledged_between(self, start: float, end: float) -> set[str]:
        with self.lock:
            return {item for item, t in self.acknowledged.items() if start <= t <= end}


Work = Callable[[httpx.Client, threading.Event, Load], None]


def _repeat(
    stop: threading.Event, load: Load, attempt: Callable[[], tuple[int, str | None]]
) -> None:
    """`attempt` until `stop`; a failing app is not hammered (a pause after each failure)."""
    while not stop.is_set():
        try:
            status, item = attempt()
        except (httpx.HTTPError, ValueError, KeyError):
            status, item = 0, None
        load.record(status, item)
        if not 200 <= status < 300:
            stop.wait(0.2)


def post_messages(client: httpx.Client, stop: threading.Event, load: Load) -> None:
    conversation = client.post("/api/chat/conversations", json={"title": "chaos"})
    path = f"/api/chat/conversations/{conversation.json()['id']}/messages"
    numbers = iter(range(1, 1_000_000))

    def attempt() -> tuple[int, str | None]:
        answer = client.post(path, json={"content": f"chaos {next(numbers)}"}, timeout=15)
        created = answer.status_code == 201
        return answer.status_code, answer.json()["message"]["id"] if created else None

    _repeat(stop, load, attempt)


def upload_files(client: httpx.Client, stop: threading.Event, load: Load) -> None:
    def attempt() -> tuple[int, str | None]:
        files = {"file": ("chaos.txt", UPLOAD, "text/plain")}
        answer = client.post("/api/media/files", files=files, timeout=15)
        return answer.status_code, answer.json()["id"] if answer.status_code == 201 else None

    _repeat(stop, load, attempt)


def register_accounts(client: httpx.Client, stop: threading.Event, load: Load) -> None:
    """New accounts (auth's writes); the id is the user name, found when it can log in."""

    def attempt() -> tuple[int, str | None]:
        username = unique_username("load")
        body = {"username": username, "password": PASSWORD}
        answer = client.post("/api/auth/register", json=body, timeout=15)
        return answer.status_code, username if answer.status_code == 201 else None

    _repeat(stop, load, attempt)


def read_stats(client: httpx.Client, stop: threading.Event, load: Load) -> None:
    """The user's statistics (data-processor's reads); nothing to find afterwards."""

    def attempt() -> tuple[int, str | None]:
        return client.get("/api/stats/stats/me", timeout=15).status_code, None

    _repeat(stop, load, attempt)


def listed(client: httpx.Client, work: Work) -> set[str]:
    """The items of `work`'s kind the app has now for this client's user."""
    if work is upload_files:
        return {f["id"] for f in client.get("/api/media/files").json()["items"]}
    ids: set[str] = set()
    for conversation in client.get("/api/chat/conversations").json()["items"]:
        base = f"/api/chat/conversations/{conversation['id']}/messages?limit=100"
        path = base
        while path:
            page = client.get(path).json()
            ids |= {m["id"] for m in page["items"] if m["role"] == "user"}
            cursor = page.get("next_cursor")
            path = f"{base}&cursor={cursor}" if cursor else ""
    return ids


def logging_in(edge: str, usernames: set[str]) -> set[str]:
    """The accounts among `usernames` that can log in now."""
    with client_for(edge) as client:
        return {
            name
            for name in usernames
            if client.post(
                "/api/auth/login", json={"username": name, "password": PASSWORD}
            ).status_code
            == 200
        }


def stats_total(client: httpx.Client) -> int:
    answer = client.get("/api/stats/stats/me")
    return int(answer.json()["total_messages"]) if answer.status_code == 200 else -1


def settle(clients: list[httpx.Client], work: Work, acked: set[str]) -> tuple[int, int, int | None]:
    """(acknowledged items the app lists, all items it lists, messages data-processor counted
    or None for files), waiting for the counts to converge (events flow asynchronously)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        everything = [listed(c, work) for c in clients]
        found = sum(len(items & acked) for items in everything)
        stored = sum(len(items) for items in everything)
        counted = sum(stats_total(c) for c in clients) if work is post_messages else None
        done = found >= len(acked) and (counted is None or counted == stored)
        if done or time.monotonic() > deadline:
            return found, stored, counted
        time.sleep(1)
