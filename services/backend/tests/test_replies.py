"""Replies from the real ai service, and what happens when it is down, slow or refuses."""

from __future__ import annotations

import asyncio
from typing import Any

import ai.app
import ai.config
from ai.providers import ChatMessage, LocalProvider
from backend.models import Message
from backend_fakes import Backend, MakeBackend, SilentServer
from harness.appservers import AsgiServer
from harness.servers import free_port
from harness.tokens import TokenIssuer
from sqlalchemy import select


async def _conversation(backend: Backend, headers: dict[str, str]) -> str:
    response = await backend.http.post("/conversations", json={"title": "t"}, headers=headers)
    return f"/conversations/{response.json()['id']}"


async def _messages(backend: Backend, path: str, headers: dict[str, str]) -> list[Any]:
    response = await backend.http.get(f"{path}/messages", headers=headers)
    items: list[Any] = response.json()["items"]
    return items


async def test_reply_comes_from_the_running_ai_service(
    make_backend: MakeBackend, ai_server: AsgiServer, alice: dict[str, str]
) -> None:
    backend = await make_backend(ai_url=ai_server.url)
    path = await _conversation(backend, alice)
    first = await backend.http.post(f"{path}/messages", json={"content": "Hello"}, headers=alice)
    second = await backend.http.post(f"{path}/messages", json={"content": "More?"}, headers=alice)
    assert first.status_code == second.status_code == 201

    posted = second.json()
    assert posted["message"]["role"] == "user"
    assert posted["message"]["status"] == "completed"
    # what the local provider answers to the whole conversation so far
    history = [
        ("user", "Hello"),
        ("assistant", first.json()["reply"]["content"]),
        ("user", "More?"),
    ]
    expected = await LocalProvider().reply(
        [ChatMessage.model_validate({"role": r, "content": c}) for r, c in history]
    )
    assert posted["reply"]["status"] == "completed"
    assert posted["reply"]["content"] == expected
    assert posted["reply"]["model"] == LocalProvider.model  # the UI marks the demo model
    assert posted["message"]["model"] is None
    assert "message 2 of this conversation" in expected

    stored = await _messages(backend, path, alice)
    assert [(m["role"], m["status"]) for m in stored] == [
        ("user", "completed"), ("assistant", "completed"),
    ] * 2  # fmt: skip
    assert stored[3] == posted["reply"]


async def test_ai_down_keeps_the_message_and_retry_completes_it_later(
    make_backend: MakeBackend, stopped_ai: AsgiServer, alice: dict[str, str]
) -> None:
    backend = await make_backend(ai_url=stopped_ai.url)
    path = await _conversation(backend, alice)

    posted = await backend.http.post(f"{path}/messages", json={"content": "anyone?"}, headers=alice)
    assert posted.status_code == 201, posted.text
    reply = posted.json()["reply"]
    assert reply["status"] == "pending"
    assert reply["content"] == ""
    assert reply["failure"] == "AI service unreachable", "said at once, not after the retries"
    stored = await _messages(backend, path, alice)
    assert [(m["content"], m["status"]) for m in stored] == [
        ("anyone?", "completed"),
        ("", "pending"),
    ]

    stopped_ai.start()
    retried = await backend.http.post(f"{path}/messages/{reply['id']}/retry", headers=alice)
    assert retried.status_code == 200
    assert retried.json()["status"] == "completed"
    assert '"anyone?"' in retried.json()["content"]
    assert retried.json()["id"] == reply["id"]
    assert retried.json()["failure"] is None

    again = await backend.http.post(f"{path}/messages/{reply['id']}/retry", headers=alice)
    assert again.json() == retried.json()  # a completed reply is returned as it is
    stored = await _messages(backend, path, alice)
    assert [m["status"] for m in stored] == ["completed", "completed"]


async def test_background_retry_completes_pending_replies(
    make_backend: MakeBackend, stopped_ai: AsgiServer, alice: dict[str, str]
) -> None:
    backend = await make_backend(
        ai_url=stopped_ai.url, reply_retry_interval_seconds=0.1, reply_retry_delay_seconds=0.2
    )
    path = await _conversation(backend, alice)
    posted = await backend.http.post(f"{path}/messages", json={"content": "later"}, headers=alice)
    assert posted.json()["reply"]["status"] == "pending"

    stopped_ai.start()
    for _ in range(300):
        stored = await _messages(backend, path, alice)
        if stored[1]["status"] == "completed":
            break
        await asyncio.sleep(0.1)
    assert stored[1]["status"] == "completed"
    assert '"later"' in stored[1]["content"]


async def test_slow_ai_times_out_into_a_pending_reply(
    make_backend: MakeBackend, silent_ai: SilentServer, alice: dict[str, str]
) -> None:
    backend = await make_backend(ai_url=silent_ai.url, ai_timeout_seconds=0.3, ai_attempts=2)
    path = await _conversation(backend, alice)
    started = asyncio.get_running_loop().time()
    posted = await backend.http.post(f"{path}/messages", json={"content": "hm"}, headers=alice)
    elapsed = asyncio.get_running_loop().time() - started
    assert posted.status_code == 201
    assert posted.json()["reply"]["status"] == "pending"
    assert 0.6 <= elapsed < 15  # two attempts of 0.3 s plus backoff, not a hang
    async with backend.runtime.sessions() as session:
        stored = await session.scalar(
            select(Message).where(Message.id == posted.json()["reply"]["id"])
        )
    assert stored is not None
    assert stored.attempts == 1
    assert stored.last_error == "the ai service did not answer in time"
    assert stored.next_attempt_at is not None


async def test_reply_fails_when_attempts_are_used_up_and_can_still_be_retried(
    make_backend: MakeBackend, stopped_ai: AsgiServer, alice: dict[str, str]
) -> None:
    backend = await make_backend(ai_url=stopped_ai.url, reply_max_attempts=2)
    path = await _conversation(backend, alice)
    reply = (
        await backend.http.post(f"{path}/messages", json={"content": "x"}, headers=alice)
    ).json()["reply"]
    assert reply["status"] == "pending"
    retry = f"{path}/messages/{reply['id']}/retry"
    assert (await backend.http.post(retry, headers=alice)).json()["status"] == "failed"

    stopped_ai.start()
    assert (await backend.http.post(retry, headers=alice)).json()["status"] == "completed"


async def test_ai_refusal_marks_the_reply_failed(
    make_backend: MakeBackend, redis_url: str, alice: dict[str, str], token_issuer: TokenIssuer
) -> None:
    settings = ai.config.Settings(
        redis_url=redis_url, jwks_url=token_issuer.jwks_url, ai_max_message_chars=10
    )
    strict_ai = AsgiServer(lambda: ai.app.create_app(settings), free_port())
    strict_ai.start()
    try:
        backend = await make_backend(ai_url=strict_ai.url)
        path = await _conversation(backend, alice)
        posted = await backend.http.post(
            f"{path}/messages", json={"content": "far more than ten characters"}, headers=alice
        )
    finally:
        strict_ai.stop()
    assert posted.status_code == 201
    assert posted.json()["reply"]["status"] == "failed"  # a 422 is not worth retrying


async def test_only_replies_can_be_retried(
    make_backend: MakeBackend, ai_server: AsgiServer, alice: dict[str, str]
) -> None:
    backend = await make_backend(ai_url=ai_server.url)
    path = await _conversation(backend, alice)
    posted = await backend.http.post(f"{path}/messages", json={"content": "x"}, headers=alice)
    user_message = posted.json()["message"]["id"]
    response = await backend.http.post(f"{path}/messages/{user_message}/retry", headers=alice)
    assert response.status_code == 409
    unknown = f"{path}/messages/00000000-0000-4000-8000-000000000000/retry"
    assert (await backend.http.post(unknown, headers=alice)).status_code == 404


async def test_message_rate_limit_answers_429_with_retry_after(
    make_backend: MakeBackend, ai_server: AsgiServer, alice: dict[str, str], bob: dict[str, str]
) -> None:
    backend = await make_backend(ai_url=ai_server.url, message_rate_limit=2)
    alices = await _conversation(backend, alice)
    bobs = await _conversation(backend, bob)
    codes = [
        (
            await backend.http.post(f"{alices}/messages", json={"content": "x"}, headers=alice)
        ).status_code
        for _ in range(3)
    ]
    assert codes == [201, 201, 429]
    limited = await backend.http.post(f"{alices}/messages", json={"content": "x"}, headers=alice)
    assert int(limited.headers["Retry-After"]) >= 1
    assert len(await _messages(backend, alices, alice)) == 4  # refused messages are not stored
    other = await backend.http.post(f"{bobs}/messages", json={"content": "x"}, headers=bob)
    assert other.status_code == 201  # the budget is per user
