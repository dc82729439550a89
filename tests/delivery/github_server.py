"""A small real HTTP server speaking the GitHub REST endpoints delivery calls, in memory."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN = "test-token"


@dataclass
class FakeGitHub:
    url: str = ""
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    pulls: list[dict[str, Any]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    next_id: int = 1000

    def add_comment(self, number: int, body: str) -> dict[str, Any]:
        self.next_id += 1
        comment = {"id": self.next_id, "body": body, "html_url": f"{self.url}/c/{self.next_id}"}
        self.comments.setdefault(number, []).append(comment)
        return comment


def _handler(state: FakeGitHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep pytest output quiet
            return

        def _reply(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length", "0"))
            loaded: dict[str, Any] = json.loads(self.rfile.read(length) or b"{}")
            return loaded

        def _route(self, method: str) -> None:
            state.requests.append(f"{method} {self.path}")
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                self._reply(401, {"message": "Bad credentials"})
                return
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            if match := re.fullmatch(r"/repos/[^/]+/[^/]+/issues/(\d+)/comments", parts.path):
                self._issue_comments(method, int(match[1]), query, parts.path)
            elif match := re.fullmatch(r"/repos/[^/]+/[^/]+/issues/comments/(\d+)", parts.path):
                self._edit_comment(method, int(match[1]))
            elif re.fullmatch(r"/repos/[^/]+/[^/]+/pulls", parts.path):
                self._pulls(method, query)
            else:
                self._reply(404, {"message": "Not Found"})

        def _issue_comments(
            self, method: str, number: int, query: dict[str, str], path: str
        ) -> None:
            if method == "POST":
                self._reply(201, state.add_comment(number, self._body()["body"]))
                return
            per_page, page = int(query.get("per_page", "30")), int(query.get("page", "1"))
            items = state.comments.get(number, [])
            chunk = items[(page - 1) * per_page : page * per_page]
            headers = {}
            if page * per_page < len(items):
                nxt = f"{state.url}{path}?per_page={per_page}&page={page + 1}"
                headers["Link"] = f'<{nxt}>; rel="next"'
            self._reply(200, chunk, headers)

        def _edit_comment(self, method: str, comment_id: int) -> None:
            for comments in state.comments.values():
                for comment in comments:
                    if comment["id"] == comment_id and method == "PATCH":
                        comment["body"] = self._body()["body"]
                        self._reply(200, comment)
                        return
            self._reply(404, {"message": "Not Found"})

        def _pulls(self, method: str, query: dict[str, str]) -> None:
            if method == "GET":
                found = [p for p in state.pulls if f"x:{p['head']}" == query.get("head")]
                self._reply(200, found)
                return
            pull = {**self._body(), "html_url": f"{state.url}/pull/{len(state.pulls) + 1}"}
            state.pulls.append(pull)
            self._reply(201, pull)

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

        def do_PATCH(self) -> None:
            self._route("PATCH")

    return Handler


@contextmanager
def run_fake_github() -> Iterator[FakeGitHub]:
    state = FakeGitHub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
