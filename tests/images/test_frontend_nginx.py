"""The front end's own NGINX configuration, served by a real NGINX over the built dist/.

The files and the paths they land on are read from services/frontend/Dockerfile's runtime stage
(its COPY lines), the configuration's image paths point at those files here, and NGINX runs the
Dockerfile's CMD as the image's USER. The main nginx.conf around them plays the base image's
(nginxinc/nginx-unprivileged: pid and temp paths in /tmp, mime.types, conf.d/*.conf); the NGINX
is Debian's 1.22 where the image has 1.28, the same directives.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dockerfile
import httpx
import pytest
from ci.localapp.process import ManagedProcess, wait_until_ready
from ci.localapp.servers import free_port
from imagekit.closure import cache_root, reachable_by_anyone, run_directory

REPO = Path(__file__).resolve().parents[2]
FRONTEND = REPO / "services" / "frontend"
DOCKERFILE = FRONTEND / "Dockerfile"
NGINX = Path("/usr/sbin/nginx")
START_TIMEOUT = 60.0
BUILD_TIMEOUT = 300.0
SECURITY_HEADERS = ("content-security-policy", "x-content-type-options", "referrer-policy")

MAIN_CONFIG = """
worker_processes 1;
error_log {work}/error.log notice;
pid {work}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    client_body_temp_path {work}/client_temp;
    proxy_temp_path {work}/proxy_temp;
    fastcgi_temp_path {work}/fastcgi_temp;
    uwsgi_temp_path {work}/uwsgi_temp;
    scgi_temp_path {work}/scgi_temp;
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    keepalive_timeout 65;
    include {conf_d}/*.conf;
}}
"""


@dataclass(frozen=True)
class Served:
    url: str
    dist: Path


def runtime_copies() -> tuple[list[tuple[str, str]], tuple[str, ...], str | None]:
    """(source, image path) of the runtime stage's COPY lines, its CMD and its USER."""
    commands = list(dockerfile.parse_file(str(DOCKERFILE)))
    last_from = max(i for i, c in enumerate(commands) if c.cmd == "FROM")
    runtime = commands[last_from + 1 :]
    copies = [(c.value[0], c.value[1]) for c in runtime if c.cmd == "COPY"]
    cmd = next(tuple(c.value) for c in runtime if c.cmd == "CMD")
    user = next((c.value[0] for c in runtime if c.cmd == "USER"), None)
    return copies, cmd, user


def host_source(source: str) -> Path:
    """A runtime COPY source: a repository path, or the build stage's /app/dist (npm run build
    in WORKDIR /app over `COPY services/frontend/ ./`)."""
    if source.startswith("/app/"):
        return FRONTEND / source.removeprefix("/app/")
    return REPO / source


def built_dist() -> Path:
    """services/frontend/dist, built now when `make test` has not built it already."""
    dist = FRONTEND / "dist"
    if not (dist / "index.html").is_file():
        subprocess.run(["npm", "run", "build"], cwd=FRONTEND, check=True, timeout=BUILD_TIMEOUT)
    return dist


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    if not NGINX.is_file():
        pytest.fail(f"{NGINX} not found: run `make setup` (Debian package nginx)")
    dist = built_dist()
    copies, cmd, user = runtime_copies()
    with run_directory(cache_root(REPO)) as work:
        placed = {image: work / "root" / image.strip("/") for _, image in copies}
        for source, image in copies:
            host = host_source(source)
            target = placed[image]
            target.parent.mkdir(parents=True, exist_ok=True)
            if host.is_dir():
                shutil.copytree(host, target)
            else:
                shutil.copyfile(host, target)
        port = free_port()
        for target in placed.values():
            if target.is_file() and target.suffix == ".conf":
                target.write_text(_pointed_here(target.read_text(), placed, port))
        conf_d = work / "root" / "etc/nginx/conf.d"
        (work / "nginx.conf").write_text(MAIN_CONFIG.format(work=work, conf_d=conf_d))
        run_as = user if os.geteuid() == 0 and reachable_by_anyone(work) else None
        for path in [work, *work.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        if run_as:
            uid, _, gid = run_as.partition(":")
            os.chown(work, int(uid), int(gid or uid))
        argv = [str(NGINX), "-p", str(work), "-c", str(work / "nginx.conf"), *cmd[1:]]
        assert cmd[0] == "nginx", cmd
        process = ManagedProcess("nginx", argv, {}, Path("/"), work / "nginx.log", user=run_as)
        process.start()
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until_ready({"nginx": (process, f"{url}/health")}, START_TIMEOUT)
            yield Served(url, dist)
        finally:
            process.stop()


def _pointed_here(config: str, placed: dict[str, Path], port: int) -> str:
    """The image's paths (COPY destinations and their parents) as ours; its port as `port`."""
    for image in sorted(placed, key=len, reverse=True):
        config = config.replace(image.rstrip("/"), str(placed[image]))
    config, listens = re.subn(r"listen\s+8080;", f"listen 127.0.0.1:{port};", config)
    assert listens <= 1
    return config


def get(served: Served, path: str, **headers: str) -> httpx.Response:
    return httpx.get(f"{served.url}{path}", headers=headers, timeout=10)


def assert_security_headers(response: httpx.Response) -> None:
    for header in SECURITY_HEADERS:
        assert header in response.headers, f"{response.url}: no {header}"
    assert response.headers["x-frame-options"] == "DENY"
    assert "nginx/" not in response.headers.get("server", "")  # server_tokens off


def test_health_is_plain_uncached_and_headed(served: Served) -> None:
    response = get(served, "/health")
    assert (response.status_code, response.text) == (200, "ok\n")
    assert response.headers["cache-control"] == "no-store"
    assert_security_headers(response)


@pytest.mark.parametrize("path", ["/", "/index.html", "/conversations/42", "/files"])
def test_the_app_and_its_client_routes_load_index_html_revalidated(
    served: Served, path: str
) -> None:
    response = get(served, path)
    assert response.status_code == 200
    assert response.text == (served.dist / "index.html").read_text()
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["content-type"].startswith("text/html")
    assert_security_headers(response)


def test_hashed_assets_are_immutable_and_gzipped(served: Served) -> None:
    script = max((served.dist / "assets").glob("*.js"), key=lambda p: p.stat().st_size)
    response = get(served, f"/assets/{script.name}", **{"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert response.headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in response.headers["vary"]
    assert response.content == script.read_bytes()  # httpx decoded the gzip body
    assert_security_headers(response)


def test_a_missing_asset_is_a_404_not_the_app_and_not_cached_for_a_year(served: Served) -> None:
    response = get(served, "/assets/no-such-file-0000.js")
    assert response.status_code == 404
    assert "immutable" not in response.headers.get("cache-control", "")
    assert response.text != (served.dist / "index.html").read_text()


def test_api_paths_are_a_json_404(served: Served) -> None:
    response = get(served, "/api/chat/conversations")
    assert response.status_code == 404
    assert response.json() == {"detail": "no such API route"}
    assert response.headers["cache-control"] == "no-store"
    assert_security_headers(response)
