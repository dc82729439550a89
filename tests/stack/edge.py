"""The edge router: a small reverse proxy that stands in for the cluster's ingress.

Like the ingress it sends `<route>/rest` to the service owning `<route>` as `/rest` (the prefix
is stripped), and everything else to the front end: here a static directory served with the
SPA fallback of the front end's Nginx (unknown paths get index.html). Run it with
`python -m stack.edge --port N --route /api/auth=http://127.0.0.1:PORT ... [--static DIR]`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import NamedTuple

import httpx
import uvicorn
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

READY_PATH = "/_edge/ready"
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

    def __init__(self, routes: dict[str, str], static_dir: Path | None = None) -> None:
        self.routes = routes
        self.static = SpaStaticFiles(directory=static_dir, html=True) if static_dir else None
        self.client: httpx.AsyncClient | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1003})
            return
        response: Response | None
        if scope["path"] == READY_PATH:
            response = PlainTextResponse("ok")
        else:
            response = await self._route(Request(scope, receive))
        if response is None and self.static is not None:
            await self.static(scope, receive, send)
            return
        if response is None:
            response = JSONResponse({"detail": "no route for this path"}, status_code=404)
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
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
        headers += [
            ("x-forwarded-for", request.client.host if request.client else "unknown"),
            ("x-forwarded-host", request.headers.get("host", "")),
            ("x-forwarded-proto", request.url.scheme),
            ("x-forwarded-prefix", prefix),
        ]
        query = request.scope.get("query_string", b"").decode("latin-1")
        url = upstream + path + (f"?{query}" if query else "")
        outgoing = self.client.build_request(
            request.method, url, headers=headers, content=_body(request)
        )
        try:
            answer = await self.client.send(outgoing, stream=True)
        except httpx.HTTPError as exc:
            detail = f"upstream {upstream} failed: {type(exc).__name__}"
            return JSONResponse({"detail": detail}, status_code=502)
        response = StreamingResponse(
            answer.aiter_raw(),
            status_code=answer.status_code,
            background=BackgroundTask(answer.aclose),
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
                self.client = httpx.AsyncClient(timeout=UPSTREAM_TIMEOUT, follow_redirects=False)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.client is not None:
                    await self.client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _body(request: Request) -> AsyncIterator[bytes]:
    async for chunk in request.stream():
        if chunk:
            yield chunk


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stack.edge", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--route", type=parse_route, action="append", default=[])
    parser.add_argument("--static", type=Path, default=None, help="front end's built files")
    args = parser.parse_args(argv)
    if args.static is not None and not (args.static / "index.html").is_file():
        parser.error(f"--static {args.static}: no index.html in that directory")
    routes = dict(args.route)
    print(json.dumps({"edge": f"http://{args.host}:{args.port}", "routes": routes}), flush=True)
    uvicorn.run(Edge(routes, args.static), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
