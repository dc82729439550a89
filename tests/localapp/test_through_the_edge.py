"""The session's local app (every service as a process) reached through its NGINX edge."""

from __future__ import annotations

import json
import re

import httpx
from ci.localapp.stack import StackUrls
from e2e.api import sign_up

UPLOAD_LIMIT = 10 * 1024 * 1024  # media-storage's default MEDIA_MAX_UPLOAD_BYTES


def test_a_too_large_upload_gets_the_services_413(local_stack: StackUrls) -> None:
    user = sign_up(local_stack.edge, prefix="edge")
    with user.client:
        too_large = b"\x89PNG\r\n\x1a\n" + b"0" * (UPLOAD_LIMIT + 1024 * 1024)
        answer = user.client.post("/api/media/files", files={"file": ("big.png", too_large)})
    assert answer.status_code == 413, answer.text
    assert answer.json()["detail"] == f"file exceeds the upload limit of {UPLOAD_LIMIT} bytes"


def test_an_encoded_slash_is_a_services_404_not_a_500(local_stack: StackUrls) -> None:
    answer = httpx.get(f"{local_stack.edge}/api/chat%2Fx", timeout=30)
    assert answer.status_code == 404, answer.text
    assert answer.headers["content-type"].startswith("application/json")


def test_an_encoded_slash_cannot_pick_the_upstream_host(local_stack: StackUrls) -> None:
    """`/api/auth%2F@127.0.0.1:<ai's port>/health` stays with auth: ai is never asked."""
    ai_port = local_stack.services["ai"].rsplit(":", 1)[1]
    answer = httpx.get(f"{local_stack.edge}/api/auth%2F@127.0.0.1:{ai_port}/health", timeout=30)
    assert answer.status_code == 404, answer.text
    ai_log = (local_stack.logs / "ai.log").read_text()
    assert f"@127.0.0.1:{ai_port}" not in ai_log


def test_the_admin_needs_a_session_of_its_own(local_stack: StackUrls) -> None:
    """No shared cookie jar at the edge: an anonymous client is sent to the login page."""
    answer = httpx.get(f"{local_stack.edge}/api/stats/admin/", timeout=30)
    assert answer.status_code == 302
    assert answer.headers["location"].startswith("/api/stats/admin/login/")


def test_the_admin_links_its_assets_under_the_route_prefix(local_stack: StackUrls) -> None:
    with httpx.Client(base_url=local_stack.edge, timeout=30) as client:
        login_page = client.get("/api/stats/admin/login/")
        assert login_page.status_code == 200
        stylesheets = re.findall(r'href="([^"]+\.css)"', login_page.text)
        assert stylesheets, "the admin's login page links no stylesheet"
        for href in stylesheets:
            assert href.startswith("/api/stats/static/"), href
            css = client.get(href)
            assert css.status_code == 200, href
            assert css.headers["content-type"].startswith("text/css")


def test_an_unknown_api_route_is_a_json_404(local_stack: StackUrls) -> None:
    answer = httpx.get(f"{local_stack.edge}/api/nosuch/things", timeout=30)
    assert answer.status_code == 404
    assert answer.json() == {"detail": "no such API route"}


def test_every_log_line_of_the_stack_is_json(local_stack: StackUrls) -> None:
    httpx.get(f"{local_stack.edge}/api/nosuch", timeout=30)  # at least one access line
    logs = sorted(local_stack.logs.glob("*.log"))
    assert {"edge.log", "data-processor-migrate.log", "auth-migrate.log"} <= {p.name for p in logs}
    for log in logs:
        if log.name == "edge-error.log":
            continue  # NGINX's own messages (errors only), in its own format
        for number, line in enumerate(log.read_text().splitlines(), 1):
            try:
                json.loads(line)
            except ValueError:
                raise AssertionError(f"{log.name}:{number} is not JSON: {line[:200]}") from None
    migrate = [
        json.loads(line) for line in (local_stack.logs / "data-processor-migrate.log").open()
    ]
    assert any(entry["message"].startswith("Applying data_processor.0001") for entry in migrate)
