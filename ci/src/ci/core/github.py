"""The few GitHub REST calls delivery needs: keep one PR comment current, open a PR.

The token comes from the environment of the run (GITHUB_TOKEN), never from arguments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, Self

import httpx

API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
DEFAULT_TIMEOUT = httpx.Timeout(20.0, connect=10.0)
MAX_PAGES = 50


class GitHubError(RuntimeError):
    """GitHub answered with an error; the message has the call and the status."""


@dataclass(frozen=True)
class CommentResult:
    action: Literal["created", "updated", "unchanged"]
    comment_id: int
    url: str


def preview_marker(key: str = "preview") -> str:
    """The hidden HTML comment that identifies our comment among all others."""
    return f"<!-- chat-platform:{key} -->"


class GitHub:
    def __init__(
        self, token: str, api_url: str = API_URL, timeout: httpx.Timeout = DEFAULT_TIMEOUT
    ) -> None:
        if not token:
            raise ValueError("GitHub token is empty (set GITHUB_TOKEN)")
        self._client = httpx.Client(
            base_url=api_url.rstrip("/"),
            timeout=timeout,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
            },
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.close()

    def _call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        response = self._client.request(method, url, **kwargs)
        if response.status_code >= 400:
            raise GitHubError(f"{method} {url}: HTTP {response.status_code} {response.text[:200]}")
        return response

    def _comments(self, repo: str, number: int) -> list[dict[str, Any]]:
        comments: list[dict[str, Any]] = []
        url: str | None = f"/repos/{repo}/issues/{number}/comments?per_page=100"
        for _ in range(MAX_PAGES):
            if url is None:
                break
            response = self._call("GET", url)
            comments.extend(response.json())
            url = response.links.get("next", {}).get("url")
        return comments

    def upsert_comment(self, repo: str, number: int, body: str, marker: str) -> CommentResult:
        """Update the comment holding `marker` on PR/issue `number`, or create it."""
        if not REPOSITORY.fullmatch(repo):
            raise ValueError(f"repository {repo!r} must be owner/name")
        if number <= 0:
            raise ValueError(f"pull request number {number} must be positive")
        text = body if marker in body else f"{marker}\n{body}"
        for comment in self._comments(repo, number):
            if marker in (comment.get("body") or ""):
                if comment["body"] == text:
                    return CommentResult("unchanged", comment["id"], comment.get("html_url", ""))
                updated = self._call(
                    "PATCH", f"/repos/{repo}/issues/comments/{comment['id']}", json={"body": text}
                ).json()
                return CommentResult("updated", updated["id"], updated.get("html_url", ""))
        created = self._call(
            "POST", f"/repos/{repo}/issues/{number}/comments", json={"body": text}
        ).json()
        return CommentResult("created", created["id"], created.get("html_url", ""))

    def open_pull_request(self, repo: str, head: str, base: str, title: str, body: str) -> str:
        """Open a PR from `head` into `base` (or return the open one); returns its URL."""
        owner = repo.split("/", 1)[0]
        existing = self._call(
            "GET", f"/repos/{repo}/pulls", params={"head": f"{owner}:{head}", "state": "open"}
        ).json()
        if existing:
            return str(existing[0]["html_url"])
        created = self._call(
            "POST",
            f"/repos/{repo}/pulls",
            json={"title": title, "head": head, "base": base, "body": body},
        ).json()
        return str(created["html_url"])


def preview_comment(host: str, branch: str, expires: str, images: dict[str, str]) -> str:
    rows = "\n".join(f"| {name} | `{ref}` |" for name, ref in sorted(images.items()))
    return (
        f"{preview_marker()}\n"
        f"### Preview environment\n\n"
        f"**URL:** https://{host}/  \n"
        f"**Branch:** `{branch}`  \n"
        f"**Expires:** {expires} (pushing to the branch renews it)\n\n"
        f"| service | image |\n|---|---|\n{rows}\n"
    )
