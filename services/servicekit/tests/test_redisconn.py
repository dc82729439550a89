"""The Redis client factory: a URL, or Sentinel that follows a promoted replica (real servers)."""

from __future__ import annotations

import pytest
import redis
from harness.sentinel import SentinelGroup
from pydantic import ValidationError
from servicekit.health import redis_check
from servicekit.ratelimit import AsyncRateLimiter, RateLimiter
from servicekit.redisconn import RedisTarget, async_redis_client, parse_sentinels, redis_client
from servicekit.settings import ServiceSettings


def test_sentinel_addresses_parse_with_the_default_port() -> None:
    assert parse_sentinels("a:1, b ,c:26380") == (("a", 1), ("b", 26379), ("c", 26380))


@pytest.mark.parametrize("text", ["", " , ", "a:port", "a:0", ":26379", "a:70000"])
def test_bad_sentinel_addresses_name_the_variable(text: str) -> None:
    with pytest.raises(ValueError, match="REDIS_SENTINELS"):
        parse_sentinels(text)


def test_settings_choose_sentinel_over_a_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_SENTINELS", "s1:26379,s2:26379")
    monkeypatch.setenv("REDIS_SENTINEL_MASTER", "chat")
    monkeypatch.setenv("REDIS_PASSWORD", "s3cret")
    target = ServiceSettings().redis_target()
    assert target == RedisTarget(
        sentinels=(("s1", 26379), ("s2", 26379)), master="chat", password="s3cret"
    )
    assert "s3cret" not in repr(target)
    assert "s3cret" not in target.describe()
    monkeypatch.delenv("REDIS_SENTINELS")
    monkeypatch.setenv("REDIS_URL", "redis://h:6379/0")
    assert ServiceSettings().redis_target() == RedisTarget(url="redis://h:6379/0")
    monkeypatch.delenv("REDIS_URL")
    assert ServiceSettings().redis_target() is None


def test_a_bad_sentinel_list_fails_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_SENTINELS", "s1:port")
    with pytest.raises(ValidationError, match="REDIS_SENTINELS"):
        ServiceSettings()


@pytest.mark.parametrize("password", [None, ""])
def test_sentinel_without_a_required_password_fails_at_start(
    monkeypatch: pytest.MonkeyPatch, password: str | None
) -> None:
    monkeypatch.setenv("REDIS_SENTINELS", "s1:26379")
    monkeypatch.setenv("REDIS_AUTH_REQUIRED", "true")
    if password is not None:
        monkeypatch.setenv("REDIS_PASSWORD", password)
    with pytest.raises(ValidationError, match="REDIS_PASSWORD is not set"):
        ServiceSettings()
    monkeypatch.setenv("REDIS_PASSWORD", "s3cret")
    assert ServiceSettings().redis_target() is not None
    monkeypatch.delenv("REDIS_AUTH_REQUIRED")  # a Sentinel group without auth: allowed
    monkeypatch.delenv("REDIS_PASSWORD")
    assert ServiceSettings().redis_target() is not None


def test_a_target_is_a_url_or_sentinels_not_both() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        RedisTarget(url="redis://h/0", sentinels=(("s", 26379),))
    with pytest.raises(ValueError, match="exactly one"):
        RedisTarget()


def _target(group: SentinelGroup) -> RedisTarget:
    return RedisTarget(sentinels=parse_sentinels(group.addresses()), master=group.master)


def test_sync_client_limiter_and_check_follow_a_promoted_replica(
    sentinel_group: SentinelGroup,
) -> None:
    client = redis_client(_target(sentinel_group), timeout=0.5)
    limiter = RateLimiter(client, fail_open=False)
    check = redis_check(_target(sentinel_group))
    assert limiter.hit("k", limit=1000, period=60).allowed
    check()
    old_port = sentinel_group.primary_port()
    assert old_port is not None
    sentinel_group.kill_primary()
    sentinel_group.wait_for_promotion(old_port)
    # The same client (and limiter) now talk to the new primary. The first command may still
    # meet the dead primary's pooled connection (refused: fail closed); the next one may not.
    outcomes = [limiter.hit("k", limit=1000, period=60).allowed for _ in range(2)]
    assert outcomes[-1], outcomes
    check()
    assert client.info("replication")["role"] == "master"
    assert sentinel_group.primary_port() not in (old_port, None)
    client.close()


async def test_async_client_follows_a_promoted_replica(sentinel_group: SentinelGroup) -> None:
    client = async_redis_client(_target(sentinel_group), timeout=0.5)
    limiter = AsyncRateLimiter(client, fail_open=False)
    assert (await limiter.hit("a", limit=1000, period=60)).allowed
    old_port = sentinel_group.primary_port()
    assert old_port is not None
    sentinel_group.kill_primary()
    sentinel_group.wait_for_promotion(old_port)
    outcomes = [(await limiter.hit("a", limit=1000, period=60)).allowed for _ in range(2)]
    assert outcomes[-1], outcomes
    info = await client.info("replication")
    assert info["role"] == "master"
    await client.aclose()


def test_a_url_target_is_the_plain_client(redis_url: str) -> None:
    client = redis_client(redis_url)
    assert isinstance(client, redis.Redis)
    assert client.ping()
    client.close()
