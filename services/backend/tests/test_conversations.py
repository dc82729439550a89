"""Conversations and messages over HTTP: ownership, cursor pagination, input limits."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from backend_fakes import MakeBackend
from harness.appservers import AsgiServer


async def test_create_get_and_list_a_conversation(
    make_backend: MakeBackend, ai_server: AsgiServer, alice: dict[str, str]
) -> None:
    backend = await make_backend(ai_url=ai_server.url)
    created = await backend.http.post("/conversations", json={"title": "  Trip  "}, headers=alice)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["title"] == "Trip"
    assert set(body) == {"id", "title", "created_at"}

    fetched = await backend.http.get(f"/conversations/{body['id']}", headers=alice)
    assert fetched.json() == body
    listed = await backend.http.get("/conversations", headers=alice)
    assert listed.json() == {"items": [body], "next_cursor": None}


async def test_requests_without_a_valid_token_are_401(
    make_backend: MakeBackend, ai_server: AsgiServer
) -> None:
    backend = await make_backend(ai_url=ai_server.url)
    assert (await backend.http.get("/conversations")).status_code == 401
    bad = {"Authorization": "Bearer not-a-token"}
    response = await backend.http.post("/conversations", json={"title": "x"}, headers=bad)
    assert response.status_code == 401


async def test_another_users_conversation_is_404(
    make_backend: MakeBackend, ai_server: AsgiServer, alice: dict[str, str], bob: dict[str, str]
) -> None:
    backend = await make_backend(ai_url=ai_server.url)
    conversation = (
        await backend.http.post("/conversations", json={"title": "mine"}, headers=alice)
    ).json()
    base = f"/conversations/{conversation['id']}"
    posted = await backend.http.post(f"{base}/messages", json={"content": "hi"}, headers=alice)
    reply_id = posted.json()["reply"]["id"]

    assert (await backend.http.get(base, headers=bob)).status_code == 404
    assert (await backend.http.get(f"{base}/messages", headers=bob)).status_code == 404
    sneaky = await backend.http.post(f"{base}/messages", json={"content": "x"}, headers=bob)
    assert sneaky.status_code == 404
    retry = await backend.http.post(f"{base}/messages/{reply_id}/retry", headers=bob)
    assert retry.status_code == 404
    assert (await backend.http.get("/conversations", headers=bob)).json()["items"] == []
    # and nothing of bob's attempt was stored
    messages = (await backend.http.get(f"{base}/messages", headers=alice)).json()["items"]
    assert [m["content"] for m in messages if m["role"] == "user"] == ["hi"]


async def _all_pages(backend: Any, path: str, headers: dict[str, str], limit: int) -> list[Any]:
    pages: list[Any] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        page = (await backend.http.get(path, params=params, headers=headers)).json()
        pages.append(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return pages


async def test_conversations_paginate_newest_first(
    make_backend: MakeBackend, ai_server: AsgiServer, alice: dict[str, str], bob: dict[str, str]
) -> None:
    backend = await make_backend(ai_url=ai_server.url)
    titles = [f"c{i}" for i in range(7)]
    for title in titles:
        await backend.http.post("/conversations", json={"title": title}, headers=alice)
    await backend.http.post("/conversations", json={"title": "bob's"}, headers=bob)

    pages = await _all_pages(backend, "/conversations", alice, limit=3)
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [c["title"] for page in pages for c in page] == list(reversed(titles))


async def test_messages_paginate_oldest_first(
    make_backend: MakeBackend, ai_server: AsgiServer, alice: dict[str, str]
) -> None:
    backend = await make_backend(ai_url=ai_server.url)
    conversation = await backend.http.post("/conversations", json={"title": "t"}, headers=alice)
    path = f"/conversations/{conversation.json()['id']}/messages"
    for i in range(3):
        await backend.http.post(path, json={"content": f"question {i}"}, headers=alice)

    pages = await _all_pages(backend, path, alice, limit=4)
    assert [len(p) for p in pages] == [4, 2]
    items = [m for page in pages for m in page]
    assert [m["role"] for m in items] == ["user", "assistant"] * 3
    assert [m["content"] for m in items[::2]] == ["question 0", "question 1", "question 2"]
    assert all("question" in m["content"] for m in items[1::2])  # replies quote the question
    assert len({m["id"] for m in items}) == 6


@pytest.mark.parametrize(
    ("path", "body", "status", "words"),
    [
        ("/conversations", {"title": ""}, 422, "title"),
        ("/conversations", {"title": "   "}, 422, "title must not be blank"),
        ("/conversations", {"title": "x" * 201}, 422, "200 characters"),
        ("/conversations", {"name": "x"}, 422, "title"),
        ("/conversations", {"title": "nul\x00byte"}, 422, "title"),
        ("{conv}/messages", {"content": "nul\x00byte"}, 422, "content"),
        ("{conv}/messages", {"content": ""}, 422, "content"),
        ("{conv}/messages", {"content": "\n  "}, 422, "content must not be blank"),
        ("{conv}/messages", {"content": "x" * 101}, 422, "at most 100 characters"),
        ("{conv}/messages", {"content": 5}, 422, "content"),
        ("{conv}/messages", {"content": "x" * 3000}, 413, "bytes"),
        ("/conversations/not-a-uuid/messages", {"content": "x"}, 422, "conversation_id"),
    ],
)
async def test_bad_input_gets_a_clear_4xx(
    make_backend: MakeBackend,
    ai_server: AsgiServer,
    alice: dict[str, str],
    path: str,
    body: dict[str, Any],
    status: int,
    words: str,
) -> None:
    backend = await make_backend(ai_url=ai_server.url, message_max_chars=100, max_body_bytes=2048)
    conversation = await backend.http.post("/conversations", json={"title": "t"}, headers=alice)
    path = path.replace("{conv}", f"/conversations/{conversation.json()['id']}")
    response = await backend.http.post(path, json=body, headers=alice)
    assert response.status_code == status, response.text
    assert words in response.json()["detail"]


# A cursor of the right shape whose `after` no database integer can hold.
HUGE_CURSOR = base64.urlsafe_b64encode(b'{"after":' + b"9" * 40 + b"}").decode().rstrip("=")


@pytest.mark.parametrize(
    ("query", "words"),
    [("limit=0", "limit"), ("limit=101", "at most 100"), ("cursor=%%%", "cursor"),
     ("cursor=eyJ4IjoxfQ", "cursor"), (f"cursor={HUGE_CURSOR}", "cursor"),
     ("cursor=%00", "cursor")],
)  # fmt: skip
async def test_bad_paging_parameters_are_4xx(
    make_backend: MakeBackend, ai_server: AsgiServer, alice: dict[str, str], query: str, words: str
) -> None:
    backend = await make_backend(ai_url=ai_server.url)
    conversation = await backend.http.post("/conversations", json={"title": "t"}, headers=alice)
    messages = f"/conversations/{conversation.json()['id']}/messages"
    for path in ("/conversations", messages):
        response = await backend.http.get(f"{path}?{query}", headers=alice)
        assert response.status_code in (400, 422), response.text
        assert words in response.json()["detail"]


async def test_unknown_conversation_is_404(
    make_backend: MakeBackend, ai_server: AsgiServer, alice: dict[str, str]
) -> None:
    backend = await make_backend(ai_url=ai_server.url)
    missing = "/conversations/00000000-0000-4000-8000-000000000000"
    assert (await backend.http.get(missing, headers=alice)).status_code == 404
    response = await backend.http.post(f"{missing}/messages", json={"content": "x"}, headers=alice)
    assert response.status_code == 404
    assert response.json() == {"detail": "conversation not found"}
