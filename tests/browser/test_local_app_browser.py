"""The built front end in Chromium (desktop and 390x844) as `make run` serves it: from the local
app's NGINX edge, in front of the real services (services/frontend/browser/writes.mjs).

No write is lost or doubled (double clicks on Create and Send, a second message sent while the
first is on its way), the data is there after the app restarts on its data directory, and an
unreachable ai service is said at once. Screenshots: test-output/browser/<device>-<phase>.png.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from browser.test_frontend_browser import CHROMIUM, FRONTEND, OUTPUT_DIR, _built_app, _require_tools
from ci.localapp.stack import REPO_ROOT, SOURCE_ROOT, LocalStack
from harness.lifetime import bound_to_parent
from harness.servers import free_port

BROWSER_TIMEOUT = 300.0
SERVICES = "ai,auth,backend,media-storage"


def _browser(phase: str, app_url: str, **env: str) -> dict[str, object]:
    run = subprocess.run(
        ["node", "browser/writes.mjs"],
        cwd=FRONTEND,
        env={
            **os.environ,
            "APP_URL": app_url,
            "PHASE": phase,
            "OUTPUT_DIR": str(OUTPUT_DIR),
            "CHROMIUM_PATH": str(CHROMIUM),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=BROWSER_TIMEOUT,
        check=False,
    )
    assert run.returncode == 0, f"{phase}: exit {run.returncode}\n{run.stdout}\n{run.stderr}"
    result: dict[str, object] = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["ok"] is True
    for device in ("desktop", "phone"):
        picture = OUTPUT_DIR / f"{device}-{phase}.png"
        assert picture.read_bytes().startswith(b"\x89PNG"), picture
    return result


@contextlib.contextmanager
def make_run_app(data: Path, port: int, dist: Path) -> Iterator[str]:
    """`python -m ci.localapp` as `make run` starts it (data directory, SPA, fixed port)."""
    env = {k: v for k, v in os.environ.items() if k not in ("TEST_DATABASE_URL", "TEST_REDIS_URL")}
    process = subprocess.Popen(
        bound_to_parent([
            sys.executable, "-m", "ci.localapp", "--only", SERVICES, "--static", str(dist),
            "--edge-port", str(port), "--data-dir", str(data),
        ]),
        cwd=REPO_ROOT,
        env={**env, "PYTHONPATH": str(SOURCE_ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        line = process.stdout.readline()
        assert line, f"the app did not start:\n{process.communicate(timeout=60)[1]}"
        yield str(json.loads(line)["edge"])
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=60)


def test_no_lost_or_doubled_writes_and_the_data_survives_a_restart(localapp_data: Path) -> None:
    _require_tools()
    dist = _built_app()
    port = free_port()
    with make_run_app(localapp_data, port, dist) as edge:
        written = _browser("writes", edge)
    with make_run_app(localapp_data, port, dist) as edge:
        found = _browser("after-restart", edge, ACCOUNTS=json.dumps(written["accounts"]))
    assert found["accounts"] == written["accounts"]


def test_an_unreachable_ai_service_is_said_at_once(postgres_admin_url: str, redis_url: str) -> None:
    _require_tools()
    dead_ai = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    stack = LocalStack(
        repo_root=REPO_ROOT,
        postgres_admin_url=postgres_admin_url,
        redis_url=redis_url,
        static_dir=_built_app(),
        only=["ai", "auth", "backend"],
        extra_env={"backend": {"AI_URL": dead_ai}},
    )
    with stack as urls:
        _browser("unreachable", urls.edge, STEP_TIMEOUT_MS="20000")
