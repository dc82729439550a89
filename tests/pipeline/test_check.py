"""`python -m ci.check` (host mode) as a process, on a small repository of its own.

The repository is shaped like this one (a service that needs PostgreSQL and Redis, a library,
a repository suite, the real test harness) so that the recipes run for real, quickly, and
without recursing into this suite.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from pipeline.repos import Repo

REPO_ROOT = Path(__file__).resolve().parents[2]
CI_SRC = REPO_ROOT / "ci" / "src"
RUN_TIMEOUT = 600

HELLO = """\
name: hello
kind: python
description: Says hello
port: 8000
health: /health
ready: /ready
route: /api/hello
needs: [postgres, redis]
uses: [kit]
run: [uvicorn, hello.main:app]
"""

PYPROJECT = """\
[tool.ruff]
line-length = 100

[tool.mypy]
strict = true
explicit_package_bases = true

[tool.pytest.ini_options]
addopts = ["-p", "harness.plugin", "--import-mode=importlib"]
pythonpath = ["tests", "services/hello/src", "services/kit/src"]
"""

HELLO_TESTS = '''\
"""hello against the servers the check hands over."""

import os

import psycopg
import redis
from hello import greet


def test_greets() -> None:
    assert greet("you") == "hello you"


def test_uses_the_checks_postgres_and_redis(database_url: str, redis_url: str) -> None:
    assert os.environ["TEST_DATABASE_URL"].startswith("postgresql://")
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert redis.Redis.from_url(redis_url).ping()
'''

BROKEN_TEST = """\
from hello import greet


def test_deliberately_broken() -> None:
    assert greet("you") == "goodbye"
"""

BLOCKING_TEST = """\
import os
import time
from pathlib import Path


def test_blocks(database_url: str) -> None:
    Path(os.environ["CHECK_TEST_STARTED"]).write_text("started")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        time.sleep(0.1)
"""

FILES = {
    "pyproject.toml": PYPROJECT,
    "services/hello/service.yaml": HELLO,
    # Builds without a registry: a Docker daemon here has no network.
    "services/hello/Dockerfile": "FROM scratch\nCOPY services/hello/src /src\n",
    "services/hello/src/hello/__init__.py": (
        'def greet(name: str) -> str:\n    return f"hello {name}"\n'
    ),
    "services/hello/tests/test_hello.py": HELLO_TESTS,
    "services/kit/src/kit/__init__.py": 'VERSION = "1"\n',
    "services/kit/tests/test_kit.py": (
        'from kit import VERSION\n\n\ndef test_version() -> None:\n    assert VERSION == "1"\n'
    ),
    "tests/test_repository.py": "def test_repository() -> None:\n    assert True is not False\n",
}


def small_repo(root: Path, extra: dict[str, str]) -> Repo:
    """The fixture repository with the real test harness (tests/harness) copied in."""
    root.mkdir()
    repo = Repo(root)
    repo.git("init", "-q", "-b", "main")
    shutil.copytree(
        REPO_ROOT / "tests" / "harness",
        root / "tests" / "harness",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    repo.commit({**FILES, **extra}, "initial")
    return repo


def check_command(repo: Repo, *args: str) -> list[str]:
    return [sys.executable, "-m", "ci.check", "--repo", str(repo.root), "--jobs", "2", *args]


def check_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(CI_SRC), **extra}


def rows(output: str) -> dict[tuple[str, str], str]:
    """(service, stage) -> verdict, from the summary table."""
    found: dict[tuple[str, str], str] = {}
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:2] == ["service", "stage"])
    for line in lines[start + 1 :]:
        parts = line.split(maxsplit=3)
        if len(parts) < 4 or "service(s)" in line:
            break
        found[(parts[0], parts[1])] = parts[3]
    return found


def fake_dagger(folder: Path, engine_answers: bool) -> dict[str, str]:
    """A `dagger` CLI stand-in on PATH (no engine can run here): it records its arguments and
    answers `dagger core version` as told. Returns the environment that puts it first."""
    folder.mkdir()
    script = folder / "dagger"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> "{folder}/calls"\n'
        'if [ "$1" = core ]; then\n'
        + ("  exit 0\n" if engine_answers else '  echo "engine: connection refused" >&2; exit 1\n')
        + "fi\nexit 3\n"
    )
    script.chmod(0o755)
    return {"PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}


def test_with_a_reachable_engine_make_check_is_dagger_call_check(tmp_path: Path) -> None:
    repo = small_repo(tmp_path / "repo", {})
    env = fake_dagger(tmp_path / "bin", engine_answers=True)

    done = subprocess.run(
        check_command(repo, "--engine-first", "--all", "--severity", "CRITICAL"),
        env=check_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 3  # the engine's verdict, passed on
    calls = (tmp_path / "bin" / "calls").read_text().splitlines()
    assert calls == [
        "core version",
        "call check --base origin/main --all --severity CRITICAL --version dev --revision unknown",
    ]
    assert not (repo.root / "test-output").exists()


def test_with_a_reachable_engine_a_check_pattern_is_dagger_check(tmp_path: Path) -> None:
    repo = small_repo(tmp_path / "repo", {})
    env = fake_dagger(tmp_path / "bin", engine_answers=True)

    done = subprocess.run(
        check_command(repo, "--engine-first", "--check", "lint-*", "--check", "test-hello"),
        env=check_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 3  # the engine's verdict, passed on
    calls = (tmp_path / "bin" / "calls").read_text().splitlines()
    assert calls == ["core version", "check lint-* test-hello"]


def test_a_check_pattern_runs_the_checks_of_that_name_on_the_host(tmp_path: Path) -> None:
    repo = small_repo(tmp_path / "repo", {})
    no_engine = fake_dagger(tmp_path / "bin", engine_answers=False)

    done = subprocess.run(
        check_command(repo, "--engine-first", "--check", "lint-*"),
        env=check_env(**no_engine),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    typo = subprocess.run(
        check_command(repo, "--check", "lint-helo"),
        env=check_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert rows(done.stdout) == {("hello", "lint"): "ok"}
    assert typo.returncode == 2
    assert "--check lint-helo: matches no check" in typo.stderr
    assert "lint-hello" in typo.stderr  # the known names


def test_a_broken_test_fails_the_run_marks_its_row_and_keeps_the_artefacts(tmp_path: Path) -> None:
    repo = small_repo(tmp_path / "repo", {"services/hello/tests/test_broken.py": BROKEN_TEST})
    no_engine = fake_dagger(tmp_path / "bin", engine_answers=False)

    done = subprocess.run(
        check_command(repo, "--engine-first", "--all"),
        env=check_env(**no_engine),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )

    assert done.returncode == 1, done.stdout + done.stderr
    first = done.stdout.splitlines()[0]
    assert first == (
        "ci.check: no reachable Dagger engine (engine: connection refused); "
        "running the pipeline's stages on the host"
    )
    assert done.stdout.count("no reachable Dagger engine") == 1
    table = rows(done.stdout)
    assert table[("hello", "test")] == "FAILED"
    assert table[("hello", "lint")] == "ok"
    assert table[("test-repo", "test")] == "ok"
    assert table[("hello", "build")] in {"ok", "not run: no Docker daemon"}
    assert table[("hello", "scan")].startswith("not run: ")  # no Trivy here: named, not passed
    assert "test_deliberately_broken" in done.stdout  # the failure's detail under the table
    output = repo.root / "test-output" / "hello"
    assert (output / "exit-code").read_text().strip() == "1"
    junit = (output / "junit.xml").read_text()
    assert 'failures="1"' in junit
    assert "test_deliberately_broken" in junit
    assert "test_uses_the_checks_postgres_and_redis" in junit
    assert "1 failed" in (output / "output.txt").read_text()
    assert (repo.root / "test-output" / "test-repo" / "junit.xml").is_file()
    progress = done.stdout.splitlines()
    assert "hello test: started" in done.stdout
    assert any(line.startswith("[") and "hello lint: ok (" in line for line in progress)


def test_usage_errors_exit_2_naming_the_problem(tmp_path: Path) -> None:
    repo = small_repo(tmp_path / "repo", {})

    bad_ref = subprocess.run(
        check_command(repo, "--base", "no-such-ref"),
        env=check_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    bad_jobs = subprocess.run(
        [*check_command(repo, "--all"), "--jobs", "0"],
        env=check_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert bad_ref.returncode == 2
    assert "no-such-ref" in bad_ref.stderr
    bad_severity = subprocess.run(
        check_command(repo, "--all", "--severity", "SEVERE"),
        env=check_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert bad_jobs.returncode == 2
    assert "--jobs 0" in bad_jobs.stderr
    assert bad_severity.returncode == 2
    assert "'SEVERE'" in bad_severity.stderr
    assert not (repo.root / "test-output").exists()  # nothing ran


def processes_marked(marker: str) -> list[int]:
    """Processes whose environment carries `marker` (postgres' postmaster keeps it; its
    children go with it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def wait_for(condition: object, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.mark.skipif(sys.platform != "linux", reason="the process guarantees use Linux prctl")
def test_sigkill_of_the_runner_leaves_no_postgres_nor_pytest_behind(tmp_path: Path) -> None:
    repo = small_repo(tmp_path / "repo", {"services/hello/tests/test_blocks.py": BLOCKING_TEST})
    started = tmp_path / "started"
    marker = f"CHECK_TEST_TREE_{uuid.uuid4().hex}"
    runner = subprocess.Popen(
        check_command(repo, "--all"),
        env=check_env(**{marker: "1", "CHECK_TEST_STARTED": str(started)}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(started.exists, "the blocking test to start", timeout=RUN_TIMEOUT)
        assert processes_marked(marker), "the run's processes carry the marker"

        runner.send_signal(signal.SIGKILL)
        runner.wait(timeout=60)

        wait_for(lambda: not processes_marked(marker), "every process of the run to end")
    finally:
        for pid in processes_marked(marker):
            os.kill(pid, signal.SIGKILL)


def test_a_repository_recipe_stops_at_the_first_failing_step(tmp_path: Path) -> None:
    repo = small_repo(tmp_path / "repo", {"services/hello/src/hello/unused.py": "import os\n"})

    done = subprocess.run(
        [sys.executable, "-m", "ci.check", "--repo", str(repo.root), "--recipe", "lint"],
        env=check_env(),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )

    assert done.returncode == 1
    assert "$ ruff check ." in done.stdout
    assert "F401" in done.stdout  # ruff's own report, straight to the terminal
    assert "$ mypy" not in done.stdout
    assert "ruff check failed (exit 1)" in done.stderr


def test_the_test_recipe_is_one_pytest_session_with_its_closing_line(tmp_path: Path) -> None:
    plain = "from hello import greet\n\n\ndef test_greets() -> None:\n    assert greet('a')\n"
    repo = small_repo(tmp_path / "repo", {"services/hello/tests/test_hello.py": plain})

    done = subprocess.run(
        [sys.executable, "-m", "ci.check", "--repo", str(repo.root), "--recipe", "test"],
        env=check_env(),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[0] == "$ pytest"
    assert "3 passed" in done.stdout.splitlines()[-1]  # what CI reads: pytest's own last line
