"""POST /v1/reply through the app: cache, limits, rate limit, providers, operations endpoints."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from ai.cache import KEY_PREFIX
from ai.config import Settings
from ai.providers import ChatMessage, LocalProvider
from ai_fakes import FakeOpenAI, MakeClient
from harness.servers import RedisServer
from pydantic import ValidationError

CONVERSATION: dict[str, Any] = {
    "messages": [
        {"role": "user", "content": "What is a stream?"},
        {"role": "assistant", "content": "A log of entries."},
        {"role": "user", "content": "And a consumer group?"},
    ]
}


def _settings(redis_url: str | None, **overrides: Any) -> Settings:
    return Settings(redis_url=redis_url, **overrides)


async def test_local_reply_then_cache_hit(make_client: MakeClient, redis_url: str) -> None:
    client = await make_client(_settings(redis_url, ai_cache_ttl_seconds=120))
    first = await client.post("/v1/reply", json=CONVERSATION)
    assert first.status_code == 200, first.text
    expected = await LocalProvider().reply(
        [ChatMessage.model_validate(m) for m in CONVERSATION["messages"]]
    )
    assert first.json() == {"content": expected, "model": "local-echo-1", "cached": False}

    second = await client.post("/v1/reply", json=CONVERSATION)
    assert second.json() == {"content": expected, "model": "local-echo-1", "cached": True}

    keys = redis.Redis.from_url(redis_url).keys(f"{KEY_PREFIX}*")
    assert len(keys) == 1
    ttl = redis.Redis.from_url(redis_url).ttl(keys[0])
    assert 0 < ttl <= 120


async def test_different_conversation_is_not_a_cache_hit(
    make_client: MakeClient, redis_url: str
) -> None:
    client = await make_client(_settings(redis_url))
    await client.post("/v1/reply", json=CONVERSATION)
    other = {"messages": [*CONVERSATION["messages"][:2], {"role": "user", "content": "Else?"}]}
    response = await client.post("/v1/reply", json=other)
    assert response.json()["cached"] is False


async def test_openai_provider_reply_is_cached(
    make_client: MakeClient, redis_url: str, fake_openai: FakeOpenAI
) -> None:
    settings = _settings(
        redis_url,
        ai_provider="openai",
        ai_openai_base_url=fake_openai.base_url,
        ai_openai_model="tiny-model",
        ai_openai_api_key="sk-secret",
    )
    client = await make_client(settings)
    first = await client.post("/v1/reply", json=CONVERSATION)
    second = await client.post("/v1/reply", json=CONVERSATION)
    assert first.json() == {
        "content": "echo: And a consumer group?",
        "model": "tiny-model",
        "cached": False,
    }
    assert second.json()["cached"] is True
    assert second.json()["content"] == first.json()["content"]
    assert len(fake_openai.requests) == 1  # the second answer never reached the model server


async def test_model_server_failure_is_a_gateway_error(
    make_client: MakeClient, redis_url: str, fake_openai: FakeOpenAI
) -> None:
    fake_openai.mode = "error"
    settings = _settings(
        redis_url,
        ai_provider="openai",
        ai_openai_base_url=fake_openai.base_url,
        ai_openai_model="m",
    )
    client = await make_client(settings)
    response = await client.post("/v1/reply", json=CONVERSATION)
    assert response.status_code == 502
    assert "HTTP 500" in response.json()["detail"]
    # failures are not cached: the next request asks again
    await client.post("/v1/reply", json=CONVERSATION)
    assert len(fake_openai.requests) == 2


async def test_too_large_body_is_413(make_client: MakeClient, redis_url: str) -> None:
    client = await make_client(_settings(redis_url, ai_max_body_bytes=2048))
    big = {"messages": [{"role": "user", "content": "x" * 5000}]}
    response = await client.post("/v1/reply", json=big)
    assert response.status_code == 413
    assert "2048 bytes" in response.json()["detail"]


async def test_chunked_body_over_the_limit_is_413(make_client: MakeClient, redis_url: str) -> None:
    client = await make_client(_settings(redis_url, ai_max_body_bytes=2048))

    async def chunks() -> Any:
        for _ in range(10):
            yield b"x" * 500

    response = await client.post(
        "/v1/reply", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "messages.0.role"),
        ({"messages": [{"role": "user", "content": ""}]}, "messages.0.content"),
        ({"messages": [{"role": "user"}]}, "messages.0.content"),
        ({"messages": "hello"}, "messages"),
        ({"messages": [{"role": "user", "content": "hi"}], "extra": 1}, "extra"),
        ({"messages": [{"role": "user", "content": "y" * 101}]}, "at most 100 characters"),
        ({"messages": [{"role": "user", "content": "z"}] * 4}, "at most 3 messages"),
    ],
)
async def test_invalid_requests_are_422_with_the_field(
    make_client: MakeClient, redis_url: str, body: dict[str, Any], words: str
) -> None:
    client = await make_client(_settings(redis_url, ai_max_messages=3, ai_max_message_chars=100))
    response = await client.post("/v1/reply", json=body)
    assert response.status_code == 422
    assert words in response.json()["detail"]


async def test_malformed_json_is_422(make_client: MakeClient, redis_url: str) -> None:
    client = await make_client(_settings(redis_url))
    response = await client.post(
        "/v1/reply", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422


async def test_rate_limit_trips_with_retry_after(make_client: MakeClient, redis_url: str) -> None:
    client = await make_client(_settings(redis_url, ai_rate_limit=2, ai_rate_window_seconds=60))
    codes = [(await client.post("/v1/reply", json=CONVERSATION)).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    limited = await client.post("/v1/reply", json=CONVERSATION)
    assert int(limited.headers["Retry-After"]) >= 1


async def test_replies_without_redis(make_client: MakeClient, private_redis: RedisServer) -> None:
    client = await make_client(_settings(private_redis.url()))
    private_redis.stop()
    for _ in range(2):
        response = await client.post("/v1/reply", json=CONVERSATION)
        assert response.status_code == 200
        assert response.json()["cached"] is False


async def test_health_ready_metrics(make_client: MakeClient, redis_url: str) -> None:
    client = await make_client(_settings(redis_url))
    assert (await client.get("/health")).status_code == 200
    assert (await client.get("/ready")).status_code == 200
    await client.post("/v1/reply", json=CONVERSATION)
    await client.post("/v1/reply", json=CONVERSATION)
    metrics = (await client.get("/metrics")).text
    assert 'ai_replies_total{provider="local",source="provider"} 1.0' in metrics
    assert 'ai_replies_total{provider="local",source="cache"} 1.0' in metrics
    assert "http_requests_total" in metrics


def test_openai_settings_name_the_missing_variables() -> None:
    with pytest.raises(ValidationError, match="AI_OPENAI_BASE_URL and AI_OPENAI_MODEL"):
        Settings(ai_provider="openai")


def test_api_key_stays_out_of_repr() -> None:
    settings = Settings(
        ai_provider="openai", ai_openai_base_url="http://x/v1", ai_openai_model="m",
        ai_openai_api_key="sk-very-secret",
    )  # fmt: skip
    assert "sk-very-secret" not in repr(settings)
