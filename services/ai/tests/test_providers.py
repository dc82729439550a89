"""The providers on their own: the local one's determinism, the OpenAI one against a real server."""

from __future__ import annotations

import pytest
from ai.providers import ChatMessage, LocalProvider, OpenAIProvider, ProviderError
from ai_fakes import FakeOpenAI
from pydantic import SecretStr


def _conversation(*texts: str) -> list[ChatMessage]:
    roles = ["user", "assistant"]
    return [
        ChatMessage.model_validate({"role": roles[i % 2], "content": t})
        for i, t in enumerate(texts)
    ]


async def test_local_provider_is_stable_for_identical_input() -> None:
    provider = LocalProvider()
    messages = _conversation("hello there", "hi!", "how are you today?")
    first = await provider.reply(messages)
    second = await LocalProvider().reply(list(messages))
    assert first == second
    assert '"how are you today?"' in first
    assert "4 words" in first
    assert "message 2 of this conversation" in first


async def test_local_provider_answers_the_last_user_message() -> None:
    provider = LocalProvider()
    one = await provider.reply(_conversation("apples"))
    other = await provider.reply(_conversation("pears"))
    assert "apples" in one
    assert "pears" in other
    assert one != other


async def test_local_provider_shortens_long_messages() -> None:
    reply = await LocalProvider().reply(_conversation("word " * 500))
    assert len(reply) < 400
    assert "500 words" in reply


async def test_local_provider_without_user_message_greets() -> None:
    reply = await LocalProvider().reply([ChatMessage(role="system", content="be nice")])
    assert reply.startswith("Hello")


async def test_openai_provider_speaks_the_protocol(fake_openai: FakeOpenAI) -> None:
    provider = OpenAIProvider(
        fake_openai.base_url, "tiny-model", SecretStr("sk-test-123"), timeout=5, max_tokens=64
    )
    try:
        reply = await provider.reply(_conversation("first", "second", "third"))
    finally:
        await provider.aclose()
    assert reply == "echo: third"
    (request,) = fake_openai.requests
    assert request["model"] == "tiny-model"
    assert request["max_tokens"] == 64
    assert request["stream"] is False
    assert [m["content"] for m in request["messages"]] == ["first", "second", "third"]
    assert fake_openai.headers[0]["Authorization"] == "Bearer sk-test-123"


async def test_openai_provider_without_key_sends_no_authorization(fake_openai: FakeOpenAI) -> None:
    provider = OpenAIProvider(fake_openai.base_url, "m", None, timeout=5)
    try:
        await provider.reply(_conversation("x"))
    finally:
        await provider.aclose()
    assert "Authorization" not in fake_openai.headers[0]


@pytest.mark.parametrize(
    ("mode", "status", "words"),
    [("slow", 504, "in time"), ("error", 502, "HTTP 500"), ("malformed", 502, "choices")],
)
async def test_openai_provider_failures_become_provider_errors(
    fake_openai: FakeOpenAI, mode: str, status: int, words: str
) -> None:
    fake_openai.mode = mode
    fake_openai.delay = 1.0
    provider = OpenAIProvider(fake_openai.base_url, "m", None, timeout=0.3)
    try:
        with pytest.raises(ProviderError, match=words) as caught:
            await provider.reply(_conversation("x"))
    finally:
        await provider.aclose()
    assert caught.value.status == status


async def test_openai_provider_unreachable_is_a_provider_error() -> None:
    from harness.servers import free_port

    provider = OpenAIProvider(f"http://127.0.0.1:{free_port()}/v1", "m", None, timeout=2)
    try:
        with pytest.raises(ProviderError, match="unreachable"):
            await provider.reply(_conversation("x"))
    finally:
        await provider.aclose()
