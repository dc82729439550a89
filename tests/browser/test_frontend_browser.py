"""The built front end in headless Chromium, in front of the real services.

The services run as real processes (the local app of ci/src/ci/localapp, on the harness's PostgreSQL
and Redis). `services/frontend/browser/run.mjs` serves the built app with `vite preview`, which
sends /api/... to the stack's edge router (API_URL), and drives Debian's Chromium through
playwright-core: the registration rules, register, a failed then a good login, create a
conversation, send a message, see the AI's reply marked "demo model", survive a rejected access
token with one transparent refresh, upload and download a file, refuse an 11 MB one, open the
statistics, then every page at desktop size and at 390x844: no page may scroll sideways.
Screenshots of each page at both sizes land in test-output/browser/.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from ci.localapp.stack import StackUrls

REPO_ROOT = Path(__file__).resolve().parents[2]
FRONTEND = REPO_ROOT / "services" / "frontend"
OUTPUT_DIR = REPO_ROOT / "test-output" / "browser"
CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
# Every page run.mjs visits at both sizes (desktop-<page>.png, phone-<page>.png).
PAGES = (
    "login",
    "register",
    "conversations",
    "conversation",
    "files",
    "statistics",
    "not-found",
)
DEVICES = ("desktop", "phone")
BROWSER_TIMEOUT = 300.0
BUILD_TIMEOUT = 300.0


def _require_tools() -> None:
    """Fail (not skip) when the machine lacks what `make setup` installs."""
    if not (FRONTEND / "node_modules" / "playwright-core").is_dir():
        pytest.fail("services/frontend/node_modules is missing: run `make setup` (npm ci)")
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} not found: run `make setup` (Debian package chromium)")
    if shutil.which("node") is None:
        pytest.fail("node is not on PATH")


# What the build reads (the Makefile's FRONTEND_SOURCES): a change in any of them rebuilds.
BUILD_INPUTS = ("src", "public", "index.html", "package.json", "vite.config.ts", "tsconfig.json")


def _newest_input() -> float:
    paths = [FRONTEND / name for name in BUILD_INPUTS]
    files = [f for p in paths for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file()]
    return max(f.stat().st_mtime for f in files)


def _built_app() -> Path:
    """services/frontend/dist, built now when it is missing or older than its sources (a
    stale build would test yesterday's front end)."""
    dist = FRONTEND / "dist"
    index = dist / "index.html"
    if not index.is_file() or index.stat().st_mtime < _newest_input():
        subprocess.run(["npm", "run", "build"], cwd=FRONTEND, check=True, timeout=BUILD_TIMEOUT)
    return dist


@pytest.fixture
def stack(local_stack: StackUrls) -> StackUrls:
    """The session's local stack (shared with the e2e suite), once the tools are checked."""
    _require_tools()
    return local_stack


def test_register_log_in_chat_and_upload_in_chromium(stack: StackUrls) -> None:
    _built_app()
    env = dict(os.environ)
    env.pop("APP_URL", None)  # always the built app served here, never a stray server
    env.update(
        {"API_URL": stack.edge, "OUTPUT_DIR": str(OUTPUT_DIR), "CHROMIUM_PATH": str(CHROMIUM)}
    )
    screenshot = OUTPUT_DIR / "conversation.png"
    pictures = [OUTPUT_DIR / f"{device}-{page}.png" for page in PAGES for device in DEVICES]
    for old in (screenshot, *pictures):
        old.unlink(missing_ok=True)

    run = subprocess.run(
        ["node", "browser/run.mjs"],
        cwd=FRONTEND,
        env=env,
        capture_output=True,
        text=True,
        timeout=BROWSER_TIMEOUT,
        check=False,
    )

    assert run.returncode == 0, (
        f"browser test failed (exit {run.returncode}); service logs in {stack.logs}\n"
        f"stdout:\n{run.stdout}\nstderr:\n{run.stderr}"
    )
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["ok"] is True
    assert result["reply"], "the AI reply shown in the browser is empty"
    assert result["uploadedBytes"] == screenshot.stat().st_size
    assert result["messagesCounted"] >= 1, "the statistics page does not count the message"
    assert result["refreshes"] == 1
    for picture in (screenshot, *pictures):
        assert picture.read_bytes().startswith(b"\x89PNG\r\n\x1a\n"), f"{picture} is no PNG"
