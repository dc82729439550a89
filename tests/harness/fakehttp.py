"""A real JSON HTTP server on a free loopback port, in a thread, for stand-ins of other services.

The stand-in only decides the answer; sockets, threads, body reading and JSON encoding are here:

    def answer(request: Request) -> Reply:
        return 200, {"content": "hello"}

    with JsonServer(answer) as server:
        httpx.post(f"{server.url}/v1/reply", json={...})

An answer that needs headers of its own or a body that is not JSON returns a `Response` instead.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Protocol, TypeVar


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]  # as the client spelled them
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        """The header's value whatever its case (HTTP header names are case-insensitive)."""
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)


@dataclass(frozen=True)
class Response:
    """A reply sent as given: any body bytes, headers of its own (Content-Length is added)."""

    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Response:
        content_type = {"Content-Type": "application/json"}
        return cls(status, json.dumps(payload).encode(), {**content_type, **(headers or {})})


Reply = tuple[int, Any]  # status and a JSON-serialisable body
Answer = Callable[[Request], Reply | Response]


class JsonServer:
    """Answers every request with `answer(request)`: a `Reply` as JSON, a `Response` as given.

    Starts when constructed."""

    def __init__(self, answer: Answer) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(answer))
        self._server.daemon_threads = True
        # A short poll interval: close() (shutdown) returns within it, not after half a second.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        """`http://127.0.0.1:<port>` (no trailing slash)."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> JsonServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class StandIn(Protocol):
    """A stand-in that keeps its own state and answers requests; it learns its URL to link to."""

    url: str

    def answer(self, request: Request) -> Reply | Response: ...


S = TypeVar("S", bound=StandIn)


@contextmanager
def serving(stand_in: S) -> Iterator[S]:
    """Serves `stand_in.answer` for the `with` block, with `stand_in.url` set to the server's."""
    with JsonServer(stand_in.answer) as server:
        stand_in.url = server.url
        yield stand_in


def _handler(answer: Answer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            request = Request(
                method=self.command,
                path=self.path,
                headers=dict(self.headers.items()),
                body=self.rfile.read(length) if length else b"",
            )
            reply = answer(request)
            response = reply if isinstance(reply, Response) else Response.json(*reply)
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            if self.command != "HEAD":  # a HEAD reply announces the body's length, sends none
                self.wfile.write(response.body)

        # http.server dispatches on do_<METHOD> (its names, hence the noqa); all get one answer.
        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _answer  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: no line per request on stderr."""

    return Handler
