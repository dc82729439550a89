"""The edge: a real NGINX (Debian's package) in front of the services, as the gateway is in the
cluster.

Its configuration is generated from two sources, never written by hand:
- the routes: each chart's values.yaml (`route` and `httpRoute.maxBodySize`), the table the
  charts' HTTPRoutes are rendered from (charts/lib/templates/_route.tpl). Like those routes, a
  prefix owns itself and what lies below it (`/api/auth`, `/api/auth/login`, not `/api/authors`)
  and is replaced by `/`; client `X-Forwarded-*` headers are replaced by what the edge saw.
- the front end: its image's own server block (services/frontend/nginx/default.conf, with its
  security headers), pointed at the built SPA; the routes go into that server block, so an
  unknown `/api/...` path gets the front end's JSON 404 as in the cluster.

NGINX runs in one process (`master_process off`): a SIGKILLed stack takes it along
(`setpriv --pdeathsig`), where orphaned worker processes would keep answering.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from ci.localapp.process import ManagedProcess, StackError

READY_PATH = "/_edge/ready"
FRONTEND_CONF = Path("services/frontend/nginx/default.conf")
SECURITY_HEADERS = Path("services/frontend/nginx/security-headers.conf")
IMAGE_SECURITY_HEADERS = "/etc/nginx/snippets/security-headers.conf"
INSTALL_HINT = "sudo apt-get install -y nginx  (or run `make setup`)"
_NAME = re.compile(r"^[a-z][a-z0-9-]*$")
_SIZE = re.compile(r"^[0-9]+[kKmMgG]?$")


class EdgeError(StackError):
    """The edge's configuration cannot be made; the message names the file and field."""


@dataclass(frozen=True)
class Route:
    """One service behind the edge: requests under `prefix` go to `upstream` without it."""

    name: str
    prefix: str  # /api/auth
    upstream: str  # http://127.0.0.1:PORT
    max_body: str  # NGINX size (1m), the chart's httpRoute.maxBodySize


def nginx_binary() -> str:
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise EdgeError(f"nginx not found; install it: {INSTALL_HINT}")
    return found


def chart_route(repo_root: Path, name: str, upstream: str) -> Route:
    """The route of service `name` as its chart renders it (charts/<name>/values.yaml)."""
    path = repo_root / "charts" / name / "values.yaml"
    try:
        values = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise EdgeError(f"{path}: cannot read the chart's values: {exc}") from exc
    prefix = values.get("route") if isinstance(values, dict) else None
    if not isinstance(prefix, str) or not prefix.startswith("/api/") or prefix.endswith("/"):
        raise EdgeError(f"{path}: route must be /api/<name> without a trailing /, got {prefix!r}")
    http_route = values.get("httpRoute") or {}
    max_body = str(http_route.get("maxBodySize", "")) if isinstance(http_route, dict) else ""
    if not _SIZE.match(max_body):
        raise EdgeError(f"{path}: httpRoute.maxBodySize must be an NGINX size, got {max_body!r}")
    if not _NAME.match(name):
        raise EdgeError(f"{path}: service name {name!r} is not a DNS label")
    return Route(name=name, prefix=prefix, upstream=upstream, max_body=max_body)


def _json_string(text: str) -> str:
    """A JSON document as an NGINX single-quoted string (no quote or backslash of its own)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def route_locations(route: Route) -> str:
    """The locations of one route: the prefix itself and everything below it, prefix removed."""
    unavailable = json.dumps({"detail": f"{route.name} ({route.upstream}) is unreachable"})
    too_large = json.dumps({"detail": f"request body larger than {route.max_body}"})
    proxy = f"""
        client_max_body_size {route.max_body};
        proxy_pass {route.upstream}/;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header X-Forwarded-For $remote_addr;
        proxy_set_header X-Forwarded-Host $host;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header X-Forwarded-Prefix {route.prefix};
        proxy_set_header X-Forwarded-Port "";
        proxy_set_header X-Real-IP "";
        proxy_set_header Forwarded "";
        proxy_read_timeout 120s;
        proxy_send_timeout 120s;
        error_page 502 504 = @{route.name}_unreachable;
        error_page 413 = @{route.name}_too_large;"""
    return f"""
    location = {route.prefix} {{{proxy}
    }}
    location ^~ {route.prefix}/ {{{proxy}
    }}
    location @{route.name}_unreachable {{
        default_type application/json;
        return 502 {_json_string(unavailable)};
    }}
    location @{route.name}_too_large {{
        default_type application/json;
        return 413 {_json_string(too_large)};
    }}
"""


def server_block(
    repo_root: Path, routes: list[Route], port: int, static_dir: Path, instance: str
) -> str:
    """The front end image's server block on our port and SPA, with the routes inside it."""
    source = repo_root / FRONTEND_CONF
    text = source.read_text()
    replacements = {
        "listen 8080;": f"listen 127.0.0.1:{port};",
        "root /usr/share/nginx/html;": f"root {static_dir};",
        IMAGE_SECURITY_HEADERS: str(repo_root / SECURITY_HEADERS),
    }
    for old, new in replacements.items():
        if old not in text:
            raise EdgeError(f"{source}: expected {old!r} (the edge rewrites it for the local app)")
        text = text.replace(old, new)
    end = text.rstrip().rfind("}")
    ready = f"""
    location = {READY_PATH} {{
        access_log off;
        default_type text/plain;
        return 200 {_json_string(instance)};
    }}
"""
    locations = "".join(route_locations(route) for route in routes)
    return text[:end] + ready + locations + text[end:]


def nginx_config(
    repo_root: Path,
    routes: list[Route],
    *,
    port: int,
    static_dir: Path,
    instance: str,
    run_dir: Path,
    access_log: Path,
    error_log: Path,
) -> str:
    """The whole nginx.conf of the edge; its temporary files live in `run_dir`."""
    temp = {kind: run_dir / kind for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")}
    return f"""# Generated by ci.localapp.edge at every start of the local app: edits are lost.
daemon off;
master_process off;
pid {run_dir / "nginx.pid"};
error_log {error_log} error;
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    client_body_temp_path {temp["client_body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
    # The path without the query: query strings may carry secrets and stay out of the log.
    map $request_uri $edge_path {{ "~^(?<path>[^?]*)" $path; }}
    log_format edge_json escape=json '{{"logger":"edge.access","service":"edge",'
        '"level":"info","message":"$request_method $edge_path $status",'
        '"method":"$request_method","path":"$edge_path","status":$status,'
        '"duration_s":$request_time,"bytes":$body_bytes_sent}}';
    access_log {access_log} edge_json;
{server_block(repo_root, routes, port, static_dir, instance)}
}}
"""


def edge_process(
    repo_root: Path,
    routes: list[Route],
    *,
    port: int,
    static_dir: Path | None,
    run_dir: Path,
    logs: Path,
) -> tuple[ManagedProcess, str]:
    """NGINX configured for `routes` (not started yet) and the id its ready path answers with.

    Access lines (JSON) go to `logs`/edge.log, NGINX's own messages to edge-error.log.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    if static_dir is None:
        static_dir = run_dir / "no-front-end"
        static_dir.mkdir(exist_ok=True)
    instance = secrets.token_hex(16)
    config = run_dir / "nginx.conf"
    config.write_text(
        nginx_config(
            repo_root,
            routes,
            port=port,
            static_dir=static_dir.resolve(),
            instance=instance,
            run_dir=run_dir,
            access_log=logs / "edge.log",
            error_log=logs / "edge-error.log",
        )
    )
    argv = [nginx_binary(), "-p", str(run_dir), "-c", str(config), "-e", "stderr"]
    process = ManagedProcess("edge", argv, dict(os.environ), run_dir, logs / "edge-error.log")
    return process, instance
