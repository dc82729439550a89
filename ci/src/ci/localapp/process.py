"""One long-running process of the stack: started in its own session, logged to a file, waited
for over HTTP, and stopped with SIGTERM, then SIGKILL when it does not go."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from ci.localapp.lifetime import bound_to_parent

TERM_GRACE_SECONDS = 10.0
KILL_WAIT_SECONDS = 60.0
LOG_TAIL_LINES = 40


class StackError(RuntimeError):
    """The local stack could not be started; the message says which part and why."""


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines of a log file, or a note that there is none."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    tail = text.splitlines()[-lines:]
    return "\n".join(tail) if tail else f"(empty log {path})"


@dataclass
class ManagedProcess:
    """A child process whose output goes to `log_path`."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    cwd: Path
    log_path: Path
    user: str | None = None  # run as this user (lifetime.bound_to_parent's `user`)
    popen: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            # A session of its own: stopping signals the whole group, so gunicorn's and
            # uvicorn's worker processes go with their parent. Bound to our lifetime: a stack
            # killed with SIGKILL takes its servers with it (their workers follow them).
            self.popen = subprocess.Popen(
                bound_to_parent(self.argv, user=self.user),
                env=dict(self.env),
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def failure(self, what: str) -> StackError:
        """An error naming this process, `what` went wrong, and the tail of its log."""
        return StackError(
            f"{self.name}: {what}\ncommand: {' '.join(self.argv)}\n"
            f"last lines of {self.log_path}:\n{log_tail(self.log_path)}"
        )

    def stop(self, grace: float = TERM_GRACE_SECONDS) -> None:
        self.terminate()
        self.wait_or_kill(grace)

    def terminate(self) -> None:
        """SIGTERM to the whole process group: the server and its workers."""
        if self.popen is not None:
            self._signal_group(signal.SIGTERM)

    def wait_or_kill(self, grace: float = TERM_GRACE_SECONDS) -> bool:
        """Wait up to `grace` seconds for the exit, then SIGKILL whatever of the group is left.

        True when the process itself had to be killed.
        """
        if self.popen is None:
            return False
        killed = False
        try:
            self.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            # SIGKILL cannot be refused: wait for the exit as long as a loaded machine needs.
            self.popen.wait(timeout=KILL_WAIT_SECONDS)
            killed = True
        # Workers that outlived their parent still belong to the group.
        self._signal_group(signal.SIGKILL)
        return killed

    def _signal_group(self, signum: signal.Signals) -> None:
        assert self.popen is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signum)


def run_to_completion(process: ManagedProcess, timeout: float) -> None:
    """Start `process` and wait for it to exit 0 (a migration); raise with its log otherwise."""
    run_all_to_completion([process], timeout)


def run_all_to_completion(processes: Sequence[ManagedProcess], timeout: float) -> None:
    """Run `processes` side by side; each must exit 0 within `timeout` seconds.

    The first failure stops the others and is raised with its log.
    """
    for process in processes:
        process.start()
    deadline = time.monotonic() + timeout
    try:
        for process in processes:
            assert process.popen is not None
            try:
                code = process.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired as exc:
                raise process.failure(f"did not finish within {timeout:.0f}s") from exc
            if code != 0:
                raise process.failure(f"exited with status {code}")
    finally:
        for process in processes:
            if process.running:
                process.stop()


def wait_until_ready(
    processes: Mapping[str, tuple[ManagedProcess, str]],
    timeout: float,
    identities: Mapping[str, str] | None = None,
) -> None:
    """Poll every `(process, ready_url)` until each answers 200; fail fast when one exits.

    All are polled in one loop, so services that need each other at readiness (backend waiting
    for auth's JWKS) come up together within one deadline. `identities` names the body a
    process's ready URL must answer with: a foreign server that holds the port is not ours.
    """
    identities = identities or {}
    pending = dict(processes)
    last_seen: dict[str, str] = dict.fromkeys(pending, "no answer yet")
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=httpx.Timeout(2.0)) as client:
        while pending:
            for name, (process, url) in list(pending.items()):
                if not process.running:
                    code = process.popen.returncode if process.popen else None
                    raise process.failure(f"exited with status {code} before {url} was ready")
                try:
                    response = client.get(url)
                except httpx.HTTPError as exc:
                    last_seen[name] = f"{type(exc).__name__}: {exc}"
                    continue
                expected = identities.get(name)
                if response.status_code == 200 and expected in (None, response.text):
                    del pending[name]
                elif response.status_code == 200:
                    last_seen[name] = f"HTTP 200 from another server: {response.text[:100]!r}"
                else:
                    last_seen[name] = f"HTTP {response.status_code}: {response.text[:300]}"
            if pending and time.monotonic() > deadline:
                name, (process, url) = next(iter(pending.items()))
                raise process.failure(
                    f"{url} not ready after {timeout:.0f}s (last answer: {last_seen[name]})"
                )
            if pending:
                time.sleep(0.1)
