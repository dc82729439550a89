"""`python -m bench.chaos` (or `make chaos`): load plus one fault at a time on the local app.

The local app (ci.localapp, supervised as `make run` supervises it) runs on loopback with a
Redis of its own and a PostgreSQL primary streaming to a replica behind a Service stand-in
(harness.postgres_pair, as CloudNativePG runs it), so that the replica can be promoted. For
each fault, CLIENTS threads post chat messages (or upload files) for DURATION seconds through
the edge; the fault strikes FAULT_AT seconds in. Printed per fault: requests, answers by
status, recovery time (from the fault to the first success after the last failure), and what
was acknowledged (2xx) against what the app has afterwards: found (the acknowledged items the
app lists), stored (all it lists: a write whose answer was lost counts here only), and messages
counted by data-processor from backend's events (should equal stored). Bounded: a few
clients, seconds of load, loopback only.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ci.localapp.stack import LocalStack
from ci.localapp.supervise import RestartPolicy, supervise
from e2e.api import sign_up
from harness.postgres_pair import PostgresPair
from harness.servers import PostgresServer, RedisServer
from reliability.traffic import Load, Work, post_messages, settle, upload_files

from bench.stack import local_app

CLIENTS = 4
DURATION = 20.0
FAULT_AT = 4.0
POSTGRES_DOWN_SECONDS = 10.0
NO_LIMITS = {
    "auth": {"AUTH_LOGIN_LIMIT_PER_IP": "1000000", "AUTH_LOGIN_LIMIT_PER_ACCOUNT": "1000000"},
    "backend": {"MESSAGE_RATE_LIMIT": "1000000", "OUTBOX_REDELIVER_AFTER_SECONDS": "5"},
}


@dataclass
class Fault:
    name: str
    work: Work
    strike: Callable[[], None]
    prepare: Callable[[], None] | None = None  # before the load starts (not timed)


def run_fault(edge: str, fault: Fault) -> dict[str, object]:
    if fault.prepare is not None:
        fault.prepare()
    users = [sign_up(edge, prefix="chaos") for _ in range(CLIENTS)]
    load = Load()
    stop = threading.Event()
    clients = [user.client for user in users]
    threads = [threading.Thread(target=fault.work, args=(c, stop, load)) for c in clients]
    for thread in threads:
        thread.start()
    time.sleep(FAULT_AT)  # the fault's moment in the scenario, not a wait for a condition
    struck = time.monotonic()
    fault.strike()
    stop.wait(max(0.0, DURATION - FAULT_AT - (time.monotonic() - struck)))
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    found, stored, counted = settle(clients, fault.work, set(load.acknowledged))
    for client in clients:
        client.close()
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


def promote_replica(
    pair: PostgresPair, take_down: Callable[[PostgresServer], None]
) -> Callable[[], None]:
    """The primary taken down (stopped cleanly, or killed), the replica promoted and the
    Service re-pointed to it: what CloudNativePG does on a switchover or a failover."""

    def strike() -> None:
        take_down(pair.primary)
        pair.promote()

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
    with local_app(NO_LIMITS, replicated=True) as app:
        assert app.pair is not None
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
                    "PostgreSQL switchover (primary stopped, replica promoted)",
                    post_messages,
                    promote_replica(app.pair, PostgresServer.stop),
                ),
                Fault(
                    "PostgreSQL failover (primary kill -9, replica promoted)",
                    post_messages,
                    promote_replica(app.pair, PostgresServer.kill),
                    prepare=app.pair.rejoin,
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
