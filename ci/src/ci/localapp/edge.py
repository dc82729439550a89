"""The edge router: a small reverse proxy that stands in for the cluster's ingress.

Like the ingress it sends `<route>/rest` to the service owning `<route>` as `/rest` (the prefix
is stripped), and everything else to the front end: here a static directory served with the
SPA fallback of the front end's Nginx (unknown paths get index.html; unknown `/api/...` paths a
JSON 404). Run it with
`python -m ci.localapp.edge --port N --route /api/auth=http://127.0.0.1:PORT ... [--static DIR]`.

Upstream requests are sent by a blocking client in a worker thread: a service that answers
before reading the whole body (413) and closes leaves its answer in the kernel's buffer, where a
blocking read still finds it; asyncio's transport drops it on the failed write (a 502).
Logs are JSON lines on stdout, one access line per request.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import anyio.from_thread
import httpx
import uvicorn
from servicekit.logging import configure_logging
from starlette.background import BackgroundTask
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

READY_PATH = "/_edge/ready"
# The ready path answers with this variable's value (a per-run id): the stack that started this
# edge knows it, so a foreign server on the port is never taken for ours.
INSTANCE_ENV = "EDGE_INSTANCE_ID"
API_PREFIX = "/api/"
UPSTREAM_TIMEOUT = httpx.Timeout(connect=5.0, read=120.0, write=120.0, pool=5.0)

# Connection-level headers (RFC 9110 section 7.6.1) belong to one hop and are never forwarded.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
    }
)
# What the edge itself says about the client; a client's own values are forgeries and dropped
# (the services trust X-Forwarded-For from the edge, so a forwarded one would pick the limit key).
FORWARDING = frozenset(
    {"forwarded", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-forwarded-prefix"}
)

access_log = logging.getLogger("edge.access")
logger = logging.getLogger("edge")


class RouteMatch(NamedTuple):
    prefix: str
    upstream: str
    path: str  # what the upstream sees: the request path without the prefix


def match_route(routes: dict[str, str], path: str) -> RouteMatch | None:
    """The longest route owning `path`, with the path the upstream sees; None when none does.

    A prefix owns itself and what lies below it (`/api/auth`, `/api/auth/login`), never a
    sibling that merely starts with the same letters (`/api/authors`).
    """
    for prefix in sorted(routes, key=len, reverse=True):
        if path == prefix or path.startswith(prefix + "/"):
            return RouteMatch(prefix, routes[prefix], path[len(prefix) :] or "/")
    return None


def parse_route(text: str) -> tuple[str, str]:
    """`/api/auth=http://127.0.0.1:8001` -> `("/api/auth", "http://127.0.0.1:8001")`."""
    prefix, sep, upstream = text.partition("=")
    if not sep or not prefix.startswith("/") or prefix.endswith("/") or "://" not in upstream:
        raise argparse.ArgumentTypeError(
            f"--route {text!r}: expected /prefix=http://host:port (prefix without a trailing /)"
        )
    return prefix, upstream.rstrip("/")


class SpaStaticFiles(StaticFiles):
    """Static files with the front end's fallback: a path that is no file gets index.html."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        try:
            return await super().get_response(path, scope)
        except HTTPException as exc:
            if exc.status_code != 404:
                raise
            return await super().get_response("index.html", scope)


class Edge:
    """The ASGI application: routes first, then the static front end, else a JSON 404."""

    def __init__(
        self, routes: dict[str, str], static_dir: Path | None = None, instance: str = "edge"
    ) -> None:
        self.routes = routes
        self.static = SpaStaticFiles(directory=static_dir, html=True) if static_dir else None
        self.instance = instance
        self.client: httpx.Client | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1003})
            return
        started = time.monotonic()
        status: list[int] = []

        async def send_logged(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        try:
            await self._handle(scope, receive, send_logged)
        finally:
            if scope["path"] != READY_PATH:
                _log_access(scope, status[0] if status else 0, time.monotonic() - started)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        response: Response | None
        if path == READY_PATH:
            response = PlainTextResponse(self.instance)
        else:
            response = await self._route(Request(scope, receive))
        if response is None and self.static is not None and not path.startswith(API_PREFIX):
            await self.static(scope, receive, send)
            return
        if response is None:
            response = _not_found(path)
        await response(scope, receive, send)

    async def _route(self, request: Request) -> Response | None:
        matched = match_route(self.routes, request.url.path)
        if matched is None:
            return None
        # Forward the path exactly as received (percent-encoding intact), minus the prefix.
        raw = request.scope.get("raw_path", b"").decode("latin-1")
        rest = raw[len(matched.prefix) :] if raw.startswith(matched.prefix) else matched.path
        return await self._forward(request, matched.upstream, matched.prefix, rest or "/")

    async def _forward(self, request: Request, upstream: str, prefix: str, path: str) -> Response:
        assert self.client is not None, "lifespan startup creates the client"
        dropped = HOP_BY_HOP | FORWARDING
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in dropped]
        headers += [
            ("x-forwarded-for", request.client.host if request.client else "unknown"),
            ("x-forwarded-host", request.headers.get("host", "")),
            ("x-forwarded-proto", request.url.scheme),
            ("x-forwarded-prefix", prefix),
        ]
        query = request.scope.get("query_string", b"").decode("latin-1")
        url = upstream + path + (f"?{query}" if query else "")
        body = _body_from_thread(request) if _has_body(request) else None
        outgoing = self.client.build_request(request.method, url, headers=headers, content=body)
        try:
            answer = await run_in_threadpool(self.client.send, outgoing, stream=True)
        except httpx.HTTPError as exc:
            detail = f"upstream {upstream} failed: {type(exc).__name__}"
            logger.error("upstream failed", extra={"upstream": upstream, "error": repr(exc)})
            return JSONResponse({"detail": detail}, status_code=502)
        response = StreamingResponse(
            iterate_in_threadpool(answer.iter_raw()),
            status_code=answer.status_code,
            background=BackgroundTask(run_in_threadpool, answer.close),
        )
        # Raw header list: repeated headers (Set-Cookie) survive, nothing is re-encoded.
        response.raw_headers = [
            (k, v) for k, v in answer.headers.raw if k.decode("latin-1").lower() not in HOP_BY_HOP
        ]
        return response

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.client = httpx.Client(timeout=UPSTREAM_TIMEOUT, follow_redirects=False)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.client is not None:
                    self.client.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _not_found(path: str) -> JSONResponse:
    detail = "no such API route" if path.startswith(API_PREFIX) else "no route for this path"
    return JSONResponse({"detail": detail}, status_code=404)


def _log_access(scope: Scope, status: int, seconds: float) -> None:
    client = scope.get("client")
    access_log.info(
        "request",
        extra={
            "method": scope["method"],
            "path": scope["path"],
            "status": status,
            "duration_ms": round(seconds * 1000, 1),
            "client": client[0] if client else None,
        },
    )


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    return "transfer-encoding" in request.headers or (length is not None and length != "0")


def _body_from_thread(request: Request) -> Iterator[bytes]:
    """The client's body, chunk by chunk, for the blocking client in a worker thread."""
    chunks = request.stream()

    async def next_chunk() -> bytes | None:
        return await anext(chunks, None)

    while (chunk := anyio.from_thread.run(next_chunk)) is not None:
        if chunk:
            yield chunk


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ci.localapp.edge", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--route", type=parse_route, action="append", default=[])
    parser.add_argument("--static", type=Path, default=None, help="front end's built files")
    args = parser.parse_args(argv)
    if args.static is not None and not (args.static / "index.html").is_file():
        parser.error(f"--static {args.static}: no index.html in that directory")
    routes = dict(args.route)
    configure_logging("edge", os.environ.get("LOG_LEVEL", "INFO"))
    address = f"http://{args.host}:{args.port}"
    logger.info("edge starting", extra={"edge": address, "routes": routes})
    app = Edge(routes, args.static, os.environ.get(INSTANCE_ENV, "edge"))
    # log_config=None: uvicorn keeps the JSON handler configure_logging installed.
    # No Server/Date headers of its own: the upstream's pass through unchanged, as at the ingress.
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_config=None,
        log_level="info",
        server_header=False,
        date_header=False,
        # The edge is the first hop: the peer is the client, whatever X-Forwarded-For it sends.
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()
