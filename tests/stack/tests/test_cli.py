"""`python -m stack`: the command the front end's browser test and humans run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from stack.local import STACK_PACKAGE_ROOT

REPO_ROOT = STACK_PACKAGE_ROOT.parent
START_TIMEOUT = 120


def _cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, **extra)
    env["PYTHONPATH"] = os.pathsep.join([str(STACK_PACKAGE_ROOT), str(REPO_ROOT / "ci" / "src")])
    return env


def _run(*args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "stack", *args],
        cwd=REPO_ROOT,
        env=_cli_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--static", "/nonexistent"], "--static /nonexistent: no index.html"),
        (["--edge-port", "70000"], "--edge-port 70000: not a TCP port"),
        (["--no-such-flag"], "unrecognized arguments"),
    ],
)
def test_usage_errors_exit_2_naming_the_argument(args: list[str], message: str) -> None:
    process = _run(*args)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 2
    assert message in err


def test_an_unknown_service_is_refused_by_name(postgres_admin_url: str, redis_url: str) -> None:
    process = _run(
        "--only", "no-such-service", TEST_DATABASE_URL=postgres_admin_url, TEST_REDIS_URL=redis_url
    )
    _, err = process.communicate(timeout=60)
    assert process.returncode == 1
    assert "unknown service(s) ['no-such-service']" in err


@pytest.fixture
def running_cli(
    postgres_admin_url: str, redis_url: str, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[str], dict[str, object]]]:
    static = tmp_path / "dist"
    static.mkdir()
    (static / "index.html").write_text("<title>chat</title>")
    process = _run(
        "--only", "ai", "--static", str(static),
        TEST_DATABASE_URL=postgres_admin_url, TEST_REDIS_URL=redis_url,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        line = process.stdout.readline()  # the stack prints it once everything is ready
        assert line, f"no URLs printed; stderr:\n{process.stderr.read() if process.stderr else ''}"
        yield process, json.loads(line)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)


def test_prints_the_urls_serves_them_and_stops_on_sigterm(
    running_cli: tuple[subprocess.Popen[str], dict[str, object]],
) -> None:
    process, urls = running_cli
    edge = str(urls["edge"])
    services = urls["services"]
    assert isinstance(services, dict)
    assert list(services) == ["ai"]
    assert httpx.get(f"{edge}/api/ai/health", timeout=10).status_code == 200
    assert httpx.get(f"{services['ai']}/health", timeout=10).status_code == 200
    assert "<title>chat</title>" in httpx.get(f"{edge}/conversations", timeout=10).text

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    for url in (edge, services["ai"]):
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/health", timeout=5)
    logs = Path(str(urls["logs"]))
    assert (logs / "ai.log").is_file()
