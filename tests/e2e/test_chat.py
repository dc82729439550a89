"""A conversation with the assistant: backend stores, ai answers (/api/chat, /api/ai)."""

from __future__ import annotations

from typing import Any

from e2e.api import User, client_for, poll

REPLY_TIMEOUT = 60.0


def _messages(user: User, conversation_id: str) -> list[dict[str, Any]]:
    answer = user.client.get(f"/api/chat/conversations/{conversation_id}/messages")
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def create_conversation(user: User, title: str = "e2e") -> dict[str, Any]:
    answer = user.client.post("/api/chat/conversations", json={"title": title})
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


def post_message(user: User, conversation_id: str, content: str) -> dict[str, Any]:
    answer = user.client.post(
        f"/api/chat/conversations/{conversation_id}/messages", json={"content": content}
    )
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


def completed_reply(user: User, conversation_id: str, reply: dict[str, Any]) -> dict[str, Any]:
    """The assistant message once completed (at once, or after backend's retry)."""
    if reply["status"] == "completed":
        return reply
    messages = poll(
        lambda: _messages(user, conversation_id),
        lambda items: any(m["id"] == reply["id"] and m["status"] == "completed" for m in items),
        timeout=REPLY_TIMEOUT,
    )
    return next(m for m in messages if m["id"] == reply["id"])


def test_a_message_gets_the_assistants_reply(user: User) -> None:
    conversation = create_conversation(user, "Trip planning")
    assert conversation["title"] == "Trip planning"

    posted = post_message(user, conversation["id"], "What should I pack for Lisbon?")
    message, reply = posted["message"], posted["reply"]
    assert message["role"] == "user"
    assert message["content"] == "What should I pack for Lisbon?"
    assert reply["role"] == "assistant"
    reply = completed_reply(user, conversation["id"], reply)
    assert reply["content"].strip()

    history = _messages(user, conversation["id"])
    assert [(m["id"], m["role"]) for m in history] == [
        (message["id"], "user"),
        (reply["id"], "assistant"),
    ]
    assert history[1]["content"] == reply["content"]


def test_conversations_are_listed_for_their_owner_only(user: User, new_user: Any) -> None:
    mine = create_conversation(user, "mine")
    listed = user.client.get("/api/chat/conversations").json()
    assert mine["id"] in [c["id"] for c in listed["items"]]

    stranger = new_user()
    assert mine["id"] not in [
        c["id"] for c in stranger.client.get("/api/chat/conversations").json()["items"]
    ]
    assert stranger.client.get(f"/api/chat/conversations/{mine['id']}").status_code == 404


def test_ai_refuses_anonymous_callers(base_url: str) -> None:
    """Nobody spends the operator's model budget without a token from auth."""
    question = {"messages": [{"role": "user", "content": "Free answers?"}]}
    with client_for(base_url) as anonymous:
        answer = anonymous.post("/api/ai/v1/reply", json=question)
    assert answer.status_code == 401, answer.text
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")


def test_ai_answers_a_signed_in_user_through_its_route(user: User) -> None:
    question = {"messages": [{"role": "user", "content": "Say something about the sea."}]}
    first = user.client.post("/api/ai/v1/reply", json=question)
    assert first.status_code == 200, first.text
    assert first.json()["content"].strip()
    # A user is never answered from the shared cache: a hit would tell whether somebody else
    # asked the same before (services/ai/tests/test_security.py has the oracle case).
    again = user.client.post("/api/ai/v1/reply", json=question)
    assert again.status_code == 200, again.text
    assert [first.json()["cached"], again.json()["cached"]] == [False, False]
