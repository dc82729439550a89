"""`python -m ci.localapp`: the command the front end's browser test and humans run."""

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
from ci.localapp.stack import SOURCE_ROOT
from harness.fakehttp import JsonServer
from harness.lifetime import bound_to_parent

REPO_ROOT = SOURCE_ROOT.parents[1]
START_TIMEOUT = 120


def _cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, **extra)
    env["PYTHONPATH"] = str(SOURCE_ROOT)
    return env


def _run(*args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        bound_to_parent([sys.executable, "-m", "ci.localapp", *args]),
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


@pytest.mark.parametrize("only", ["nosuch", "ai,nosuch", ","])
def test_an_unknown_service_is_a_usage_error_before_anything_starts(only: str) -> None:
    # No TEST_DATABASE_URL: had it started anything, PostgreSQL would be the first.
    process = _run("--only", only)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 2
    assert f"--only {only}: unknown service(s)" in err
    assert "choose from ai, auth, backend, data-processor, media-storage" in err
    assert "stack: starting" not in err


def test_a_port_held_by_another_server_fails_before_anything_starts() -> None:
    with JsonServer(lambda request: (200, {"status": "ok"})) as foreign:
        port = foreign.url.rsplit(":", 1)[1]
        process = _run("--edge-port", port)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 1
    assert f"--edge-port {port}: 127.0.0.1:{port} is in use" in err
    assert "stack: starting" not in err


@pytest.fixture
def running_cli(
    postgres_admin_url: str, redis_url: str, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[str], dict[str, object]]]:
    static = tmp_path / "dist"
    static.mkdir()
    (static / "index.html").write_text("<title>chat</title>")
    process = _run(
        # ai answers only callers with auth's tokens: it needs auth's JWKS to start.
        "--only", "ai,auth", "--static", str(static),
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
    assert list(services) == ["ai", "auth"]
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
    _, err = process.communicate(timeout=30)
    assert "stack: migrating the databases of auth" in err
    assert "stack: starting ai, auth and waiting until each is ready" in err
    assert f"stack: open {edge}/ in your browser" in err
