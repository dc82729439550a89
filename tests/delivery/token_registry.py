"""A small real HTTP server speaking the registry token flow (as ghcr.io does): 401 with a
`Bearer` challenge, a token endpoint taking basic auth, manifests behind the token."""

from __future__ import annotations

import base64
import hashlib
import re
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from harness.fakehttp import Request, Response, serving

USER, PASSWORD = "ci", "s3cret"


@dataclass
class TokenRegistry:
    url: str = ""
    manifests: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # ref -> (type, body)
    issued: list[str] = field(default_factory=list)  # scopes tokens were issued for

    def answer(self, request: Request) -> Response:
        path = urlsplit(request.path).path
        if path == "/token" and request.method == "GET":
            return self._token(request)
        match = re.fullmatch(r"/v2/(.+)/manifests/([^/]+)", path)
        if match and request.method in ("GET", "HEAD", "PUT"):
            return self._manifest(request, match[1], match[2])
        return Response(404)

    def _token(self, request: Request) -> Response:
        expected = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if request.header("Authorization") != f"Basic {expected}":
            return Response(401)
        scope = parse_qs(urlsplit(request.path).query).get("scope", [""])[0]
        self.issued.append(scope)
        return Response.json(200, {"token": f"token-for:{scope}"})

    def _manifest(self, request: Request, repository: str, reference: str) -> Response:
        action = "pull,push" if request.method == "PUT" else "pull"
        scope = f"repository:{repository}:{action}"
        if request.header("Authorization") != f"Bearer token-for:{scope}":
            challenge = f'Bearer realm="{self.url}/token",service="test",scope="{scope}"'
            return Response(401, b"{}", {"WWW-Authenticate": challenge})
        if request.method == "PUT":
            digest = "sha256:" + hashlib.sha256(request.body).hexdigest()
            media_type = request.header("Content-Type") or ""
            self.manifests[reference] = self.manifests[digest] = (media_type, request.body)
            return Response(201, b"", {"Docker-Content-Digest": digest})
        if reference not in self.manifests:
            return Response(404, b"{}")
        media_type, body = self.manifests[reference]
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        return Response(200, body, {"Content-Type": media_type, "Docker-Content-Digest": digest})


def run_token_registry() -> AbstractContextManager[TokenRegistry]:
    return serving(TokenRegistry())
