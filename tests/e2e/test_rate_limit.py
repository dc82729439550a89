"""Rate limits through the ingress: 429 with Retry-After, per user or account, then recovery."""

from __future__ import annotations

import time
from typing import Any

import httpx

from e2e.api import User, client_for
from e2e.test_chat import create_conversation

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


def test_guessing_a_password_trips_the_accounts_login_limit(user: User, base_url: str) -> None:
    guesses: list[int] = []
    with client_for(base_url) as anonymous:
        while len(guesses) < MAX_ATTEMPTS:
            answer = anonymous.post(
                "/api/auth/login", json={"username": user.username, "password": "a guess"}
            )
            if answer.status_code != 401:
                break
            guesses.append(answer.status_code)
        assert answer.status_code == 429, f"no 429 after {len(guesses)} wrong passwords"
        assert guesses, "the first guess was already refused"
        assert int(answer.headers["Retry-After"]) >= 1
        # While limited, even the right password is refused: the budget is the account's.
        right = anonymous.post(
            "/api/auth/login", json={"username": user.username, "password": user.password}
        )
    assert right.status_code == 429
    # The access token issued before keeps working.
    assert user.client.get("/api/auth/me").status_code == 200
