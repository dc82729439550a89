"""Starting, waiting for and stopping the stack's processes (real child processes)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from ci.localapp.process import (
    ManagedProcess,
    StackError,
    log_tail,
    run_all_to_completion,
    run_to_completion,
    wait_until_ready,
)
from harness.servers import free_port


def _process(tmp_path: Path, *argv: str, name: str = "probe") -> ManagedProcess:
    return ManagedProcess(
        name=name, argv=argv, env=dict(os.environ), cwd=tmp_path, log_path=tmp_path / "probe.log"
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes: it only waits to be reaped by its parent.
    status = Path(f"/proc/{pid}/status").read_text()
    return "State:\tZ" not in status


def _eventually(condition: Callable[[], bool], timeout: float = 60.0) -> bool:
    """Whether `condition` holds within `timeout` (signals are not delivered instantly)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _wait_for_file(path: Path, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text()
        time.sleep(0.02)
    raise AssertionError(f"{path} never written")


def test_stop_ends_the_whole_process_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = f"sleep 300 & echo $! > {pids}.tmp && mv {pids}.tmp {pids}; wait"
    process = _process(tmp_path, "sh", "-c", script)
    process.start()
    child = int(_wait_for_file(pids))
    assert _alive(child)

    process.terminate()
    assert process.wait_or_kill() is False, "went on SIGTERM"

    assert not process.running
    assert _eventually(lambda: not _alive(child)), "the group's child outlived the stop"


def test_a_process_ignoring_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    marker = tmp_path / "armed"
    code = (
        "import signal, time, pathlib; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        f"pathlib.Path({str(marker)!r}).write_text('1'); time.sleep(300)"
    )
    process = _process(tmp_path, sys.executable, "-c", code)
    process.start()
    _wait_for_file(marker)

    process.terminate()
    # True means the grace ran out (TimeoutExpired) and SIGKILL ended it: no wait for the 300 s.
    assert process.wait_or_kill(grace=0.5) is True, "reported as killed"

    assert not process.running
    assert process.popen is not None
    assert process.popen.returncode == -9


def test_a_failed_migration_reports_its_status_and_log(tmp_path: Path) -> None:
    process = _process(tmp_path, "sh", "-c", "echo cannot reach database; exit 3", name="m")
    with pytest.raises(StackError, match=r"(?s)m: exited with status 3.*cannot reach database"):
        run_to_completion(process, timeout=30)


def test_a_hanging_migration_is_stopped_at_its_timeout(tmp_path: Path) -> None:
    process = _process(tmp_path, "sleep", "300", name="m")
    with pytest.raises(StackError, match="did not finish within 1s"):
        run_to_completion(process, timeout=1)
    assert not process.running


def _named(tmp_path: Path, name: str, script: str) -> ManagedProcess:
    return ManagedProcess(
        name, ["sh", "-c", script], dict(os.environ), tmp_path, tmp_path / f"{name}.log"
    )


def test_side_by_side_runs_stop_the_others_at_the_first_failure(tmp_path: Path) -> None:
    failing = _named(tmp_path, "bad", "echo bad revision; exit 4")
    hanging = _named(tmp_path, "slow", "sleep 300")
    # The error is the failure's, not the deadline's: nobody waited for the slow one.
    with pytest.raises(StackError, match=r"(?s)bad: exited with status 4.*bad revision"):
        run_all_to_completion([failing, hanging], timeout=600)
    assert not hanging.running


def test_side_by_side_runs_share_one_deadline(tmp_path: Path) -> None:
    done = _named(tmp_path, "ok", "true")
    hanging = _named(tmp_path, "slow", "sleep 300")
    # 10 s: time enough for `true` on a loaded machine, never for `sleep 300`.
    with pytest.raises(StackError, match=r"slow: did not finish within 10s"):
        run_all_to_completion([done, hanging], timeout=10)
    assert not hanging.running


def test_waiting_fails_fast_when_the_process_exits(tmp_path: Path) -> None:
    process = _process(tmp_path, "sh", "-c", "echo ImportError: no module x; exit 1", name="svc")
    process.start()
    # The exit is reported, not a time-out: waiting stopped when the process did.
    with pytest.raises(StackError, match=r"(?s)svc: exited with status 1.*ImportError"):
        wait_until_ready({"svc": (process, f"http://127.0.0.1:{free_port()}/ready")}, 600)


def test_waiting_times_out_with_the_last_answer(tmp_path: Path) -> None:
    port = free_port()
    # A real HTTP server that has no /ready: every poll answers 404.
    process = _process(
        tmp_path, sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"
    )
    process.start()
    try:
        # Serving first (a loaded machine may take seconds), so the 2 s deadline below is
        # spent on 404s, never on a server still starting.
        wait_until_ready({"svc": (process, f"http://127.0.0.1:{port}/")}, 120)
        with pytest.raises(StackError, match=r"not ready after 2s \(last answer: HTTP 404"):
            wait_until_ready({"svc": (process, f"http://127.0.0.1:{port}/ready")}, 2)
        (tmp_path / "ready").write_text("ok")
        wait_until_ready({"svc": (process, f"http://127.0.0.1:{port}/ready")}, 120)
    finally:
        process.stop()


def test_a_foreign_server_answering_200_is_not_taken_for_ours(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "ready").write_text("someone else")
    # Our process runs but never binds; another program answers 200 on the port meanwhile.
    ours = _process(tmp_path, "sleep", "300", name="edge")
    foreign = _process(
        tmp_path, sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"
    )
    foreign.start()
    ours.start()
    url = f"http://127.0.0.1:{port}/ready"
    try:
        with pytest.raises(StackError, match=r"not ready after 2s .*HTTP 200 from another server"):
            wait_until_ready({"edge": (ours, url)}, 2, identities={"edge": "run-1"})
        (tmp_path / "ready").write_text("run-1")
        wait_until_ready({"edge": (ours, url)}, 10, identities={"edge": "run-1"})
    finally:
        ours.stop()
        foreign.stop()


def test_log_tail_keeps_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert log_tail(log, 3) == "line 97\nline 98\nline 99"
    assert "no log" in log_tail(tmp_path / "missing.log")
