"""A small real HTTP server speaking the registry token flow (as ghcr.io does): 401 with a
`Bearer` challenge, a token endpoint taking basic auth, manifests behind the token."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

USER, PASSWORD = "ci", "s3cret"


@dataclass
class TokenRegistry:
    url: str = ""
    manifests: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # ref -> (type, body)
    issued: list[str] = field(default_factory=list)  # scopes tokens were issued for


def _handler(state: TokenRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return

        def _send(
            self, status: int, body: bytes = b"", headers: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _token(self) -> None:
            expected = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            if self.headers.get("Authorization") != f"Basic {expected}":
                self._send(401)
                return
            scope = parse_qs(urlsplit(self.path).query).get("scope", [""])[0]
            state.issued.append(scope)
            self._send(200, json.dumps({"token": f"token-for:{scope}"}).encode())

        def _manifest(self, repository: str, reference: str) -> None:
            action = "pull,push" if self.command == "PUT" else "pull"
            scope = f"repository:{repository}:{action}"
            if self.headers.get("Authorization") != f"Bearer token-for:{scope}":
                challenge = f'Bearer realm="{state.url}/token",service="test",scope="{scope}"'
                self._send(401, b"{}", {"WWW-Authenticate": challenge})
                return
            if self.command == "PUT":
                body = self.rfile.read(int(self.headers["Content-Length"]))
                digest = "sha256:" + hashlib.sha256(body).hexdigest()
                media_type = self.headers["Content-Type"]
                state.manifests[reference] = state.manifests[digest] = (media_type, body)
                self._send(201, b"", {"Docker-Content-Digest": digest})
                return
            if reference not in state.manifests:
                self._send(404, b"{}")
                return
            media_type, body = state.manifests[reference]
            digest = "sha256:" + hashlib.sha256(body).hexdigest()
            self._send(200, body, {"Content-Type": media_type, "Docker-Content-Digest": digest})

        def _route(self) -> None:
            path = urlsplit(self.path).path
            if path == "/token":
                self._token()
            elif match := re.fullmatch(r"/v2/(.+)/manifests/([^/]+)", path):
                self._manifest(match[1], match[2])
            else:
                self._send(404)

        def do_GET(self) -> None:
            self._route()

        def do_HEAD(self) -> None:
            self._route()

        def do_PUT(self) -> None:
            self._route()

    return Handler


@contextmanager
def run_token_registry() -> Iterator[TokenRegistry]:
    state = TokenRegistry()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
