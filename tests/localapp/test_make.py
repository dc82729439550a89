"""The Makefile's `help` and `run` targets, run with the real make."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from ci.localapp.stack import SOURCE_ROOT
from harness.fakehttp import JsonServer

REPO_ROOT = SOURCE_ROOT.parents[1]


def _make(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    # A make of our own: not the jobserver or flags of a `make test` that may be running us.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _phony_targets() -> set[str]:
    text = (REPO_ROOT / "Makefile").read_text()
    return {t for line in re.findall(r"^\.PHONY:(.*)$", text, re.MULTILINE) for t in line.split()}


def test_help_describes_every_target() -> None:
    run = _make("help")
    assert run.returncode == 0, run.stderr
    described = dict(re.findall(r"^make (\S+) +(\S.*)$", run.stdout, re.MULTILINE))
    targets = _phony_targets()
    assert {"setup", "lint", "test", "format", "lock", "run"} <= targets
    assert targets - set(described) == set(), "targets without a `## text` in the Makefile"


def test_run_fails_when_the_edge_port_is_taken(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<title>chat</title>")
    with JsonServer(lambda request: (200, {"status": "ok"})) as foreign:
        port = foreign.url.rsplit(":", 1)[1]
        # The run recipe itself: `-o setup` leaves the installed tools as they are (the engine's
        # toolchain has uv elsewhere) and FRONTEND_DIST needs no front-end build.
        run = _make("-o", "setup", "run", f"EDGE_PORT={port}", f"FRONTEND_DIST={tmp_path}")
    assert run.returncode != 0
    assert f"127.0.0.1:{port} is in use" in run.stderr
