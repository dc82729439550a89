"""Keep the local app's processes running as Kubernetes keeps a pod's containers running.

A process that exits is started again after a delay that doubles with each failure in a row
(CrashLoopBackOff); one that stayed up for `healthy_after` seconds starts counting afresh. A
process that fails more than `max_restarts` times in a row stops the app, saying so.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ci.localapp.process import ManagedProcess, log_tail

WATCH_INTERVAL = 0.2  # seconds between looks at the processes
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass(frozen=True)
class RestartPolicy:
    first_delay: float = 1.0
    max_delay: float = 30.0
    healthy_after: float = 60.0
    max_restarts: int = 5

    def delay(self, failures: int) -> float:
        return float(min(self.first_delay * 2 ** (failures - 1), self.max_delay))


@dataclass
class _Watched:
    process: ManagedProcess
    started_at: float = field(default_factory=time.monotonic)
    failures: int = 0  # exits in a row, each before `healthy_after`
    restart_at: float | None = None


def supervise(
    processes: Sequence[ManagedProcess],
    stop: threading.Event,
    policy: RestartPolicy,
    progress: Callable[[str], None],
    stopping_parent: int | None = None,
) -> str | None:
    """Restart what exits until `stop` is set or `stopping_parent` is being stopped (None), or
    the reason a process keeps failing."""
    watched = [_Watched(process) for process in processes]
    while not stop.wait(WATCH_INTERVAL):
        if stopping_parent is not None and handles_a_stop_signal(stopping_parent):
            progress("make was interrupted")
            return None
        now = time.monotonic()
        for entry in watched:
            if entry.restart_at is not None:
                if now >= entry.restart_at:
                    _restart(entry, progress)
                continue
            if entry.process.running:
                continue
            reason = _schedule_restart(entry, policy, now, progress)
            if reason is not None:
                return reason
    return None


def handles_a_stop_signal(pid: int) -> bool:
    """True while process `pid` runs its handler for SIGINT, SIGTERM or SIGHUP.

    GNU make, sent SIGINT alone (not through the terminal's process group), does not pass it on:
    it waits in its handler for its children to end. While it does, the signal is blocked
    (/proc/PID/status SigBlk), which is how the app it started learns that it should stop.
    """
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    blocked = next(
        (int(line.split()[1], 16) for line in status.splitlines() if line.startswith("SigBlk:")), 0
    )
    return any(blocked & (1 << (sig - 1)) for sig in STOP_SIGNALS)


def _schedule_restart(
    entry: _Watched, policy: RestartPolicy, now: float, progress: Callable[[str], None]
) -> str | None:
    process = entry.process
    process.wait_or_kill(0)  # workers the exited server left behind go with it
    code = process.popen.returncode if process.popen else None
    if now - entry.started_at >= policy.healthy_after:
        entry.failures = 0
    entry.failures += 1
    if entry.failures > policy.max_restarts:
        return (
            f"{process.name} keeps failing: it exited {entry.failures} times in a row "
            f"(last status {code}), so the app stops.\n"
            f"last lines of {process.log_path}:\n{log_tail(process.log_path)}"
        )
    delay = policy.delay(entry.failures)
    progress(
        f"{process.name} exited with status {code}; restarting in {delay:.1f}s "
        f"(restart {entry.failures} of at most {policy.max_restarts} in a row)"
    )
    entry.restart_at = now + delay
    return None


def _restart(entry: _Watched, progress: Callable[[str], None]) -> None:
    entry.process.start()
    entry.started_at = time.monotonic()
    entry.restart_at = None
    progress(f"{entry.process.name} restarted")
