"""Processes of a host run, and the guarantee that none of them outlives it.

The command a person (or CI) starts stays a thin parent; the work runs in a supervisor child
that is (Linux) a child subreaper with a parent-death signal:
- every process the run starts descends from the supervisor, and whatever daemonizes below it
  (pg_ctl's postmaster, a server a test left behind) is re-parented to the supervisor, not to
  init, so the supervisor can always find it;
- when the parent dies, however (SIGKILL included), the kernel sends the supervisor SIGTERM and
  it ends its whole process tree; it runs in a session of its own, so a signal to the parent's
  process group does not kill it before it has cleaned up.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
PARENT_VARIABLE = "CI_CHECK_SUPERVISOR_OF"
TERM_GRACE_SECONDS = 10.0


class Interrupted(Exception):  # noqa: N818 - a signal, not an error of ours
    """SIGTERM or SIGINT reached the supervisor: stop the run and clean up."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


def _prctl(option: int, value: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}) failed")


def supervised() -> bool:
    """True in the supervisor process (the parent set the variable to its own pid)."""
    return os.environ.get(PARENT_VARIABLE, "") != ""


def run_supervised(argv: Sequence[str]) -> int:
    """The parent side: start `python -m <argv>` as the supervisor and relay its exit status.

    SIGINT/SIGTERM are passed on as SIGTERM; the supervisor then stops its jobs and exits.
    """
    env = {**os.environ, PARENT_VARIABLE: str(os.getpid())}
    child = subprocess.Popen([sys.executable, "-m", *argv], env=env, start_new_session=True)

    def forward(signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    code = child.wait()
    return 128 - code if code < 0 else code


def become_supervisor() -> None:
    """The supervisor side: adopt orphans, die with the parent, turn signals into Interrupted."""
    parent = int(os.environ.pop(PARENT_VARIABLE))
    if sys.platform == "linux":
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
        _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the death signal was armed
        raise Interrupted(signal.SIGTERM)

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(signum)

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    return int(stat.rsplit(")", 1)[1].split()[1])


def descendants(root: int) -> list[int]:
    """Every live process below `root` (children first found through /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            parent = _parent_of(int(entry.name))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry.name))
    found: list[int] = []
    pending = [root]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def _reap_zombies() -> None:
    """A subreaper must wait for the orphans it adopted, or they stay zombies."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] != 0:
            pass


def end_process_tree(grace: float = TERM_GRACE_SECONDS) -> list[int]:
    """SIGTERM every descendant of this process, SIGKILL those still there after `grace`.

    Returns the pids that were signalled (empty when nothing was left over).
    """
    signalled = descendants(os.getpid())
    for pid in signalled:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        _reap_zombies()
        if not [pid for pid in descendants(os.getpid()) if not _zombie(pid)]:
            return signalled
        time.sleep(0.05)
    for pid in descendants(os.getpid()):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    _reap_zombies()
    return signalled


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def run_command(
    args: Sequence[str], cwd: Path, env: Mapping[str, str], log: Path, timeout: float
) -> int:
    """Run one command with its output appended to `log`; its exit status (127 when it is not
    installed, 124 after `timeout` seconds, when its whole process group is killed)."""
    with log.open("ab") as out:
        out.write(f"$ {' '.join(args)}\n".encode())
        out.flush()
        try:
            process = subprocess.Popen(
                list(args),
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: a timeout ends its children too
            )
        except FileNotFoundError:
            out.write(f"command not found: {args[0]}\n".encode())
            return 127
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            out.write(f"timed out after {timeout:.0f}s: killed\n".encode())
            return 124
