"""PR comment upsert and PR creation against a real local HTTP server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ci.core.github import GitHub, GitHubError, preview_comment, preview_marker
from delivery.github_server import TOKEN, FakeGitHub, run_fake_github


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with run_fake_github() as state:
        yield state


def test_comment_is_created_then_updated_then_left_alone(github: FakeGitHub) -> None:
    # 150 unrelated comments: ours must be found past the first page.
    for i in range(150):
        github.add_comment(7, f"review comment {i}")
    body = preview_comment("feat-x-1234.preview.test", "feat/x", "2026-11-28T00:00:00Z", {})
    with GitHub(TOKEN, api_url=github.url) as client:
        first = client.upsert_comment("x/chat", 7, body, preview_marker())
        # Another 60 comments push ours to page 2.
        for i in range(60):
            github.add_comment(7, f"later {i}")
        second = client.upsert_comment("x/chat", 7, body + "\nnew image", preview_marker())
        third = client.upsert_comment("x/chat", 7, body + "\nnew image", preview_marker())

    assert (first.action, second.action, third.action) == ("created", "updated", "unchanged")
    assert first.comment_id == second.comment_id == third.comment_id
    ours = [c for c in github.comments[7] if preview_marker() in c["body"]]
    assert len(ours) == 1
    assert ours[0]["body"].endswith("new image")
    assert len(github.comments[7]) == 211
    assert any("page=2" in request for request in github.requests)


def test_marker_is_added_when_the_body_lacks_it(github: FakeGitHub) -> None:
    with GitHub(TOKEN, api_url=github.url) as client:
        client.upsert_comment("x/chat", 3, "plain text", "<!-- m -->")
    assert github.comments[3][0]["body"] == "<!-- m -->\nplain text"


def test_bad_token_and_bad_arguments_fail_clearly(github: FakeGitHub) -> None:
    with GitHub("wrong", api_url=github.url) as client, pytest.raises(GitHubError, match="401"):
        client.upsert_comment("x/chat", 1, "b", "<!-- m -->")
    with GitHub(TOKEN, api_url=github.url) as client:
        with pytest.raises(ValueError, match="owner/name"):
            client.upsert_comment("chat", 1, "b", "<!-- m -->")
        with pytest.raises(ValueError, match="positive"):
            client.upsert_comment("x/chat", 0, "b", "<!-- m -->")
    with pytest.raises(ValueError, match="GITHUB_TOKEN"):
        GitHub("")


def test_open_pull_request_is_idempotent(github: FakeGitHub) -> None:
    with GitHub(TOKEN, api_url=github.url) as client:
        url = client.open_pull_request("x/chat", "release/a", "main", "release", "body")
        again = client.open_pull_request("x/chat", "release/a", "main", "release", "body")
    assert url == again
    assert len(github.pulls) == 1
    assert github.pulls[0]["base"] == "main"
