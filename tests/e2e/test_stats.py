"""data-processor counts what backend stored, from backend's event stream (/api/stats)."""

from __future__ import annotations

from typing import Any

from e2e.api import User, poll
from e2e.test_chat import create_conversation, post_message

COUNT_TIMEOUT = 60.0


def _stats(user: User) -> dict[str, Any]:
    answer = user.client.get("/api/stats/stats/me")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_a_new_user_has_no_statistics(user: User) -> None:
    stats = _stats(user)
    assert stats["user_id"] == user.id
    assert stats["total_messages"] == 0
    assert stats["per_day"] == []


def test_posted_messages_are_counted(user: User) -> None:
    conversation = create_conversation(user, "counted")
    for text in ("first", "second"):
        post_message(user, conversation["id"], f"{text} message to count")

    stats = poll(lambda: _stats(user), lambda s: s["total_messages"] >= 2, timeout=COUNT_TIMEOUT)

    # The user's two messages, each once; the assistant's replies are no messages of theirs.
    assert stats["total_messages"] == 2
    assert stats["user_id"] == user.id
    assert stats["active_conversations"] == 1
    assert sum(day["count"] for day in stats["per_day"]) == stats["total_messages"]
