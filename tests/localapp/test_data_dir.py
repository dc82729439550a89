"""`python -m ci.localapp --data-dir DIR`, as `make run` starts it: data kept across restarts,
credentials generated into DIR, dead services restarted, `--reset` starting empty."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import redis
from ci.localapp.stack import SOURCE_ROOT
from e2e.api import client_for, login, sign_up
from harness.lifetime import bound_to_parent

REPO_ROOT = SOURCE_ROOT.parents[1]
START_TIMEOUT = 180


@contextlib.contextmanager
def local_app(*args: str) -> Iterator[tuple[subprocess.Popen[str], dict[str, object]]]:
    """The CLI running with `args`, once it printed its URLs; killed if the test left it running."""
    env = {k: v for k, v in os.environ.items() if k not in ("TEST_DATABASE_URL", "TEST_REDIS_URL")}
    process = subprocess.Popen(
        bound_to_parent([sys.executable, "-m", "ci.localapp", *args]),
        cwd=REPO_ROOT,
        env={**env, "PYTHONPATH": str(SOURCE_ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    try:
        line = process.stdout.readline()  # printed once everything is ready
        assert line, f"no URLs printed; stderr:\n{process.stderr.read()}"
        yield process, json.loads(line)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=60)


def stop(process: subprocess.Popen[str]) -> str:
    """SIGTERM, a clean exit, and the progress lines."""
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    return err


def wait_for(condition: object, what: str, timeout: float = 120) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not after {timeout:.0f}s"
        time.sleep(0.2)


def test_data_survives_a_restart_and_reset_starts_empty(localapp_data: Path) -> None:
    args = ("--only", "ai,auth,backend,media-storage", "--data-dir", str(localapp_data))
    with local_app(*args) as (process, urls):
        edge = str(urls["edge"])
        user = sign_up(edge, prefix="kept")
        with user.client as client:
            conversation = client.post("/api/chat/conversations", json={"title": "kept"}).json()
            messages = f"/api/chat/conversations/{conversation['id']}/messages"
            assert client.post(messages, json={"content": "still here"}).status_code == 201
            upload = client.post("/api/media/files", files={"file": ("a.txt", b"kept bytes")})
            assert upload.status_code == 201, upload.text
        stop(process)

    with local_app(*args) as (process, urls):
        edge = str(urls["edge"])
        # The access token of the first run still verifies: auth's signing key was kept too.
        with client_for(edge, user.access_token) as client:
            listed = client.get(messages).json()
            assert [m["content"] for m in listed["items"]][:1] == ["still here"]
            download = client.get(f"/api/media/files/{upload.json()['id']}")
            assert download.content == b"kept bytes"
        with client_for(edge) as anonymous:
            login(anonymous, user.username)
        stop(process)

    with local_app(*args, "--reset") as (process, urls), client_for(str(urls["edge"])) as anonymous:
        answer = anonymous.post(
            "/api/auth/login", json={"username": user.username, "password": user.password}
        )
        assert answer.status_code == 401, answer.text
        stop(process)


def test_postgres_and_redis_need_the_generated_credentials(localapp_data: Path) -> None:
    with local_app("--only", "auth", "--data-dir", str(localapp_data)) as (process, urls):
        pg_host, pg_port = str(urls["postgres"]).split(":")
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(host=pg_host, port=pg_port, user="postgres", dbname="postgres").close()
        password = (localapp_data / "credentials" / "postgres-admin").read_text().strip()
        with psycopg.connect(
            host=pg_host, port=pg_port, user="postgres", password=password, dbname="auth"
        ) as conn:
            owner = conn.execute(
                "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'auth'"
            ).fetchone()
            assert owner == ("auth",), "each service has a role of its own"

        redis_host, redis_port = str(urls["redis"]).split(":")
        anonymous = redis.Redis(host=redis_host, port=int(redis_port), socket_timeout=10)
        with pytest.raises(redis.AuthenticationError):
            anonymous.ping()
        secret = (localapp_data / "credentials" / "redis").read_text().strip()
        assert redis.Redis(host=redis_host, port=int(redis_port), password=secret).ping()

        credentials = localapp_data / "credentials"
        assert credentials.stat().st_mode & 0o777 == 0o700
        secrets = [p.read_text().strip() for p in credentials.iterdir() if p.is_file()]
        assert all(p.stat().st_mode & 0o777 == 0o600 for p in credentials.iterdir() if p.is_file())
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            with contextlib.suppress(OSError):
                text = cmdline.read_bytes().decode(errors="replace")
                assert not any(secret in text for secret in secrets), f"{cmdline}: a password"
        stop(process)


def _pid_listening_on(port: int) -> int:
    """The pid of the process that listens on 127.0.0.1:`port` (from /proc/net/tcp)."""
    wanted = f"0100007F:{port:04X}"
    inodes = {
        line.split()[9]
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
        if line.split()[1] == wanted and line.split()[3] == "0A"  # LISTEN
    }
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        with contextlib.suppress(OSError):
            if os.readlink(fd).removeprefix("socket:[").rstrip("]") in inodes:
                return int(fd.parts[2])
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


def _ai_answers(edge: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(f"{edge}/api/ai/health", timeout=5).status_code == 200
    return False


def test_a_killed_service_is_restarted_with_backoff(localapp_data: Path) -> None:
    args = ("--only", "auth,ai", "--data-dir", str(localapp_data), "--restart-delay", "0.5")
    with local_app(*args) as (process, urls):
        edge, ai = str(urls["edge"]), str(urls["services"]["ai"])  # type: ignore[index]
        first = _pid_listening_on(int(ai.rsplit(":", 1)[1]))
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: _ai_answers(edge), "ai answers again through the edge")
        assert _pid_listening_on(int(ai.rsplit(":", 1)[1])) != first
        assert process.poll() is None, "the app keeps running"
        err = stop(process)
    assert "ai exited with status -9; restarting in 0.5s (restart 1 of at most 5" in err
    assert "ai restarted" in err


def test_a_service_that_keeps_failing_stops_the_app_saying_so(localapp_data: Path) -> None:
    args = ("--only", "auth,ai", "--max-restarts", "1", "--restart-delay", "0.1")
    with local_app(*args, "--data-dir", str(localapp_data)) as (process, urls):
        edge, ai = str(urls["edge"]), str(urls["services"]["ai"])  # type: ignore[index]
        port = int(ai.rsplit(":", 1)[1])
        os.kill(_pid_listening_on(port), signal.SIGKILL)
        wait_for(lambda: _ai_answers(edge), "ai answers again after its first restart")
        os.kill(_pid_listening_on(port), signal.SIGKILL)
        _, err = process.communicate(timeout=120)
    assert process.returncode == 1, err
    assert "local stack failed: ai keeps failing: it exited 2 times in a row" in err
    assert "last lines of" in err
