"""The built front end in Chromium (desktop and 390x844) as `make run` serves it: from the local
app's NGINX edge, in front of the real services (services/frontend/browser/writes.mjs).

No write is lost or doubled (double clicks on Create and Send, a second message sent while the
first is on its way), a large upload on a throttled link shows its progress, the data (messages
and files) is there after the app restarts on its data directory, and an unreachable ai service
is said at once. Screenshots: test-output/browser/<device>-<phase>.png and
<device>-upload-progress.png.
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
    for device in ("desktop", "phone"):
        (OUTPUT_DIR / f"{device}-{phase}.png").unlink(missing_ok=True)
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


def test_no_lost_or_doubled_writes_upload_progress_and_data_after_restart(
    localapp_data: Path,
) -> None:
    _require_tools()
    dist = _built_app()
    port = free_port()
    for device in ("desktop", "phone"):
        (OUTPUT_DIR / f"{device}-upload-progress.png").unlink(missing_ok=True)
    with make_run_app(localapp_data, port, dist) as edge:
        written = _browser("writes", edge)
    _assert_upload_progress_was_seen(written)
    with make_run_app(localapp_data, port, dist) as edge:
        found = _browser("after-restart", edge, ACCOUNTS=json.dumps(written["accounts"]))
    assert found["accounts"] == written["accounts"]


def _assert_upload_progress_was_seen(written: dict[str, object]) -> None:
    """At each size the bar was seen part-way: drawn, more than nothing, less than the whole."""
    accounts = written["accounts"]
    assert isinstance(accounts, list), accounts
    assert len(accounts) == 2, accounts
    for device, account in zip(("desktop", "phone"), accounts, strict=True):
        upload = account["upload"]
        value, end = upload["progress"]["value"], upload["progress"]["max"]
        assert 0 < value < end, f"{device}: progress {value} of {end}"
        assert end >= upload["bytes"], f"{device}: the bar ends at {end}, before the file does"
        width, height = upload["progress"]["width"], upload["progress"]["height"]
        assert width >= 100, f"{device}: the bar is drawn {width} px wide"
        assert height >= 4, f"{device}: the bar is drawn {height} px high"
        picture = OUTPUT_DIR / f"{device}-upload-progress.png"
        assert picture.read_bytes().startswith(b"\x89PNG"), picture


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
