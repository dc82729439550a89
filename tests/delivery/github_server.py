"""A small real HTTP server speaking the GitHub REST endpoints delivery calls, in memory."""

from __future__ import annotations

import re
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from harness.fakehttp import Reply, Request, Response, serving

TOKEN = "test-token"
NOT_FOUND: Reply = (404, {"message": "Not Found"})
NOT_ALLOWED: Reply = (405, {"message": "Method Not Allowed"})


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

    def answer(self, request: Request) -> Reply | Response:
        self.requests.append(f"{request.method} {request.path}")
        if request.header("Authorization") != f"Bearer {TOKEN}":
            return 401, {"message": "Bad credentials"}
        parts = urlsplit(request.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if match := re.fullmatch(r"/repos/[^/]+/[^/]+/issues/(\d+)/comments", parts.path):
            return self._issue_comments(request, int(match[1]), query, parts.path)
        if match := re.fullmatch(r"/repos/[^/]+/[^/]+/issues/comments/(\d+)", parts.path):
            return self._edit_comment(request, int(match[1]))
        if re.fullmatch(r"/repos/[^/]+/[^/]+/pulls", parts.path):
            return self._pulls(request, query)
        return NOT_FOUND

    def _issue_comments(
        self, request: Request, number: int, query: dict[str, str], path: str
    ) -> Reply | Response:
        if request.method == "POST":
            return 201, self.add_comment(number, request.json()["body"])
        if request.method != "GET":
            return NOT_ALLOWED
        per_page, page = int(query.get("per_page", "30")), int(query.get("page", "1"))
        items = self.comments.get(number, [])
        chunk = items[(page - 1) * per_page : page * per_page]
        headers = {}
        if page * per_page < len(items):
            nxt = f"{self.url}{path}?per_page={per_page}&page={page + 1}"
            headers["Link"] = f'<{nxt}>; rel="next"'
        return Response.json(200, chunk, headers)

    def _edit_comment(self, request: Request, comment_id: int) -> Reply:
        if request.method != "PATCH":
            return NOT_ALLOWED
        for comments in self.comments.values():
            for comment in comments:
                if comment["id"] == comment_id:
                    comment["body"] = request.json()["body"]
                    return 200, comment
        return NOT_FOUND

    def _pulls(self, request: Request, query: dict[str, str]) -> Reply:
        if request.method == "GET":
            return 200, [p for p in self.pulls if f"x:{p['head']}" == query.get("head")]
        if request.method != "POST":
            return NOT_ALLOWED
        pull = {**request.json(), "html_url": f"{self.url}/pull/{len(self.pulls) + 1}"}
        self.pulls.append(pull)
        return 201, pull


def run_fake_github() -> AbstractContextManager[FakeGitHub]:
    return serving(FakeGitHub())
