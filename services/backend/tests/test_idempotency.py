"""Idempotency-Key on creation: a double submit or a retry after a lost answer stores once."""

from __future__ import annotations

import asyncio

from backend_fakes import Backend, MakeBackend
from harness.appservers import AsgiServer


async def _messages(backend: Backend, conversation: str, headers: dict[str, str]) -> list[str]:
    listed = await backend.http.get(f"/conversations/{conversation}/messages", headers=headers)
    return [f"{m['role']}:{m['content']}" for m in listed.json()["items"]]


async def test_a_repeated_conversation_creation_returns_the_first(
    make_backend: MakeBackend, ai_server: AsgiServer, alice: dict[str, str]
) -> None:
    backend = await make_backend(ai_url=ai_server.url)
    headers = {**alice, "Idempotency-Key": '"c-1"'}
    first = await backend.http.post("/conversations", json={"title": "Trip"}, headers=headers)
    again = await backend.http.post("/conversations", json={"title": "Trip"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    listed = await backend.http.get("/conversations", headers=alice)
    assert len(listed.json()["items"]) == 1


async def test_a_double_click_at_once_makes_one_message_and_one_reply(
    make_backend: MakeBackend, ai_server: AsgiServer, alice: dict[str, str]
) -> None:
    backend = await make_backend(ai_url=ai_server.url)
    created = await backend.http.post("/conversations", json={"title": "t"}, headers=alice)
    conversation = created.json()["id"]
    path = f"/conversations/{conversation}/messages"
    headers = {**alice, "Idempotency-Key": "m-1"}
    answers = await asyncio.gather(
        *(backend.http.post(path, json={"content": "hello"}, headers=headers) for _ in range(4))
    )
    assert [a.status_code for a in answers] == [201] * 4, [a.text for a in answers]
    assert len({a.json()["message"]["id"] for a in answers}) == 1
    assert len({a.json()["reply"]["id"] for a in answers}) == 1
    stored = await _messages(backend, conversation, alice)
    assert [m for m in stored if m.startswith("user:")] == ["user:hello"]
    assert len([m for m in stored if m.startswith("assistant:")]) == 1


async def test_a_key_reused_for_another_request_is_refused(
    make_backend: MakeBackend, ai_server: AsgiServer, alice: dict[str, str]
) -> None:
    backend = await make_backend(ai_url=ai_server.url)
    conversation = (
        await backend.http.post("/conversations", json={"title": "t"}, headers=alice)
    ).json()["id"]
    path = f"/conversations/{conversation}/messages"
    headers = {**alice, "Idempotency-Key": "m-2"}
    first = await backend.http.post(path, json={"content": "a"}, headers=headers)
    assert first.status_code == 201
    other = await backend.http.post(path, json={"content": "b"}, headers=headers)
    assert other.status_code == 422
    assert other.json()["detail"] == "Idempotency-Key was already used with a different request"
    stored = await _messages(backend, conversation, alice)
    assert [m for m in stored if m.startswith("user:")] == ["user:a"]


async def test_keys_belong_to_their_user_and_without_a_key_each_post_stores(
    make_backend: MakeBackend, ai_server: AsgiServer, alice: dict[str, str], bob: dict[str, str]
) -> None:
    backend = await make_backend(ai_url=ai_server.url)
    same = {"Idempotency-Key": "shared"}
    a = await backend.http.post("/conversations", json={"title": "x"}, headers={**alice, **same})
    b = await backend.http.post("/conversations", json={"title": "x"}, headers={**bob, **same})
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"]
    for _ in range(2):
        await backend.http.post("/conversations", json={"title": "y"}, headers=alice)
    listed = await backend.http.get("/conversations", headers=alice)
    assert len(listed.json()["items"]) == 3


async def test_an_unusable_key_is_a_400(
    make_backend: MakeBackend, ai_server: AsgiServer, alice: dict[str, str]
) -> None:
    backend = await make_backend(ai_url=ai_server.url)
    headers = {**alice, "Idempotency-Key": '""'}
    answer = await backend.http.post("/conversations", json={"title": "x"}, headers=headers)
    assert answer.status_code == 400
    assert "Idempotency-Key must be" in answer.json()["detail"]
