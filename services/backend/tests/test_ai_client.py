"""The ai client against a real flaky HTTP server: bounded retries, backoff, what is retried."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import pytest
from backend.ai_client import AiClient, AiError, RetryPolicy
from harness.fakehttp import JsonServer, Reply, Request
from harness.servers import free_port
from harness.tokens import SERVICE_SECRET, TokenIssuer
from pydantic import SecretStr
from servicekit.servicetoken import ServiceTokens

MESSAGES = [{"role": "user", "content": "hi"}]


class FlakyAi:
    """Answers `failures` requests with `status`, then 200 with a reply; records request times."""

    def __init__(self) -> None:
        self.failures = 0
        self.status = 503
        self.times: list[float] = []
        self.authorizations: list[str | None] = []
        self.server = JsonServer(self._answer)

    @property
    def url(self) -> str:
        return self.server.url

    def _answer(self, request: Request) -> Reply:
        self.times.append(time.monotonic())
        self.authorizations.append(request.header("Authorization"))
        if len(self.times) <= self.failures:
            return self.status, {"detail": "nope"}
        return 200, {"content": "hello", "model": "m", "cached": False}


@pytest.fixture
def flaky_ai() -> Iterator[FlakyAi]:
    flaky = FlakyAi()
    with flaky.server:
        yield flaky


@pytest.fixture
def tokens(token_issuer: TokenIssuer) -> ServiceTokens:
    return ServiceTokens(token_issuer.token_url, "backend", SecretStr(SERVICE_SECRET))


def _client(url: str, attempts: int, tokens: ServiceTokens) -> AiClient:
    policy = RetryPolicy(attempts=attempts, backoff_seconds=0.1, backoff_max_seconds=0.15)
    return AiClient(url, timeout_seconds=2, connect_timeout_seconds=1, retry=policy, tokens=tokens)


async def test_transient_failures_are_retried_with_backoff(
    flaky_ai: FlakyAi, tokens: ServiceTokens
) -> None:
    flaky_ai.failures = 2
    client = _client(flaky_ai.url, attempts=3, tokens=tokens)
    try:
        reply = await client.reply(MESSAGES)
    finally:
        await client.aclose()
    assert (reply.content, reply.model) == ("hello", "m")
    gaps = [later - earlier for earlier, later in itertools.pairwise(flaky_ai.times)]
    assert len(gaps) == 2
    assert gaps[0] >= 0.1  # first backoff
    assert gaps[1] >= 0.15  # doubled, then capped at 0.15


async def test_retries_are_bounded(flaky_ai: FlakyAi, tokens: ServiceTokens) -> None:
    flaky_ai.failures = 5
    client = _client(flaky_ai.url, attempts=3, tokens=tokens)
    try:
        with pytest.raises(AiError, match="HTTP 503") as caught:
            await client.reply(MESSAGES)
    finally:
        await client.aclose()
    assert caught.value.transient is True
    assert len(flaky_ai.times) == 3


async def test_client_errors_are_not_retried(flaky_ai: FlakyAi, tokens: ServiceTokens) -> None:
    flaky_ai.failures, flaky_ai.status = 1, 422
    client = _client(flaky_ai.url, attempts=3, tokens=tokens)
    try:
        with pytest.raises(AiError, match="HTTP 422") as caught:
            await client.reply(MESSAGES)
    finally:
        await client.aclose()
    assert caught.value.transient is False
    assert len(flaky_ai.times) == 1


def test_backoff_doubles_and_is_capped() -> None:
    policy = RetryPolicy(attempts=5, backoff_seconds=0.25, backoff_max_seconds=1.0)
    assert [policy.delay(n) for n in range(1, 5)] == [0.25, 0.5, 1.0, 1.0]


async def test_every_call_carries_a_service_token_and_a_refused_one_is_renewed(
    flaky_ai: FlakyAi, tokens: ServiceTokens, token_issuer: TokenIssuer
) -> None:
    flaky_ai.failures, flaky_ai.status = 1, 401
    client = _client(flaky_ai.url, attempts=2, tokens=tokens)
    try:
        reply = await client.reply(MESSAGES)
    finally:
        await client.aclose()
    assert reply.content == "hello"
    first, second = flaky_ai.authorizations
    assert first is not None
    assert first.startswith("Bearer ")
    assert second is not None
    assert second != first
    assert token_issuer.token_requests == 2  # the refused token was dropped, a new one fetched


async def test_auth_unreachable_is_a_transient_failure(flaky_ai: FlakyAi) -> None:
    nowhere = ServiceTokens(
        f"http://127.0.0.1:{free_port()}/token", "backend", SecretStr(SERVICE_SECRET)
    )
    client = _client(flaky_ai.url, attempts=1, tokens=nowhere)
    try:
        with pytest.raises(AiError, match="no service token") as caught:
            await client.reply(MESSAGES)
    finally:
        await client.aclose()
    assert caught.value.transient is True
    assert flaky_ai.times == []  # ai was never asked without a token
