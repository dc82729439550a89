"""Posting faster than the per-user budget is refused with 429 and Retry-After, then recovers."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from e2e.api import User
from e2e.test_chat import create_conversation

pytestmark = pytest.mark.services("auth", "backend", "ai")

# Upper bound on posts before the limit must have tripped (the budget is far smaller).
MAX_ATTEMPTS = 200


def _post(user: User, conversation_id: str, n: int) -> httpx.Response:
    return user.client.post(
        f"/api/chat/conversations/{conversation_id}/messages", json={"content": f"burst {n}"}
    )


def test_a_burst_of_messages_trips_the_limit_and_it_recovers(user: User, new_user: Any) -> None:
    conversation = create_conversation(user, "burst")
    statuses: list[int] = []
    answer = _post(user, conversation["id"], 0)
    while answer.status_code == 201 and len(statuses) < MAX_ATTEMPTS:
        statuses.append(answer.status_code)
        answer = _post(user, conversation["id"], len(statuses))

    assert answer.status_code == 429, f"no 429 after {len(statuses)} posts: {answer.text}"
    assert statuses, "the very first post was refused"
    retry_after = int(answer.headers["Retry-After"])
    assert 1 <= retry_after <= 3600
    assert answer.json()["detail"]

    # The budget is per user: someone else posts meanwhile.
    other = new_user()
    assert _post(other, create_conversation(other, "calm")["id"], 0).status_code == 201

    # Once Retry-After has passed, posting is allowed again.
    time.sleep(retry_after)
    assert _post(user, conversation["id"], -1).status_code == 201
