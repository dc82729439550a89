"""Whatever `make` starts dies with it: `make run` and the `ci.check` wrapper of `make lint` /
`make test`, run with the real make and stopped as a person or a CI timeout would stop them."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ci.host.processes import descendants
from ci.localapp.__main__ import ensure_port_free
from ci.localapp.stack import REPO_ROOT
from harness.servers import free_port

GONE_TIMEOUT = 120.0


def _make(*args: str) -> subprocess.Popen[str]:
    # A make of our own: not the jobserver or flags of a `make test` that may be running us.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    return subprocess.Popen(
        ["make", "--no-print-directory", "-o", "setup", *args],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_until_gone(pids: list[int]) -> None:
    deadline = time.monotonic() + GONE_TIMEOUT
    while any(_alive(pid) for pid in pids):
        left = [pid for pid in pids if _alive(pid)]
        if time.monotonic() > deadline:
            commands = [Path(f"/proc/{pid}/cmdline").read_bytes()[:120] for pid in left]
            raise AssertionError(f"still running after {GONE_TIMEOUT:.0f}s: {commands}")
        time.sleep(0.1)


@pytest.fixture
def data() -> Iterator[Path]:
    """A data directory PostgreSQL's user can reach (pytest's tmp_path is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="localapp-make-"))
    folder.chmod(0o755)
    (folder / "dist").mkdir()
    (folder / "dist" / "index.html").write_text("<title>chat</title>")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def make_run(data: Path) -> Iterator[tuple[subprocess.Popen[str], list[int]]]:
    """`make run` once the app is up, and every process below make at that moment."""
    make = _make(
        "run", f"EDGE_PORT={free_port()}", f"FRONTEND_DIST={data / 'dist'}",
        f"DATA_DIR={data / 'data'}",
    )  # fmt: skip
    assert make.stdout is not None
    try:
        line = make.stdout.readline()
        while line and not line.startswith("{"):  # make echoes the recipe first
            line = make.stdout.readline()
        assert line, f"make run printed no URLs:\n{make.communicate(timeout=60)[1]}"
        json.loads(line)
        tree = descendants(make.pid)
        assert len(tree) >= 7, "the app, PostgreSQL, Redis, the services and NGINX"
        yield make, tree
    finally:
        if make.poll() is None:
            make.kill()
        make.communicate(timeout=60)


def test_sigkill_of_make_run_leaves_nothing_running(
    make_run: tuple[subprocess.Popen[str], list[int]],
) -> None:
    make, tree = make_run
    make.kill()
    make.wait(timeout=30)
    _wait_until_gone(tree)


def test_sigint_to_make_alone_stops_the_app(
    make_run: tuple[subprocess.Popen[str], list[int]], data: Path
) -> None:
    """Not through the terminal's process group: make alone gets SIGINT and passes nothing on."""
    make, tree = make_run
    make.send_signal(signal.SIGINT)
    _, err = make.communicate(timeout=GONE_TIMEOUT)
    _wait_until_gone(tree)
    assert "stack: make was interrupted" in err
    assert "stack: stopping" in err
    assert not (data / "data" / "postgres" / "data" / "postmaster.pid").exists(), "clean stop"


def test_sigkill_of_make_lint_ends_the_check_wrapper_and_its_supervisor() -> None:
    make = _make("lint")
    deadline = time.monotonic() + GONE_TIMEOUT
    tree: list[int] = []
    # Wait for the wrapper, its supervisor and a tool below it (three levels under make).
    while len(tree) < 3 and make.poll() is None:
        assert time.monotonic() < deadline, "make lint started nothing"
        tree = descendants(make.pid)
        time.sleep(0.05)
    make.kill()
    make.communicate(timeout=60)
    _wait_until_gone(tree)


def test_the_edge_port_check_ignores_closed_connections_in_time_wait() -> None:
    """A connection the server side closed first leaves TIME-WAIT on the port: still free."""
    port = free_port()
    with socket.create_server(("127.0.0.1", port)) as listener:
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = listener.accept()
        accepted.close()  # the server's side closes first: its port enters TIME-WAIT
        client.recv(1)
        client.close()
    ensure_port_free(port)
