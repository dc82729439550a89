"""GCRA rate limiting against the harness's real Redis."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
import redis
import redis.asyncio
from harness.servers import RedisServer
from servicekit.ratelimit import AsyncRateLimiter, RateLimiter
from servicekit.redisconn import async_redis_client, redis_client


def test_allows_the_limit_then_denies_with_retry_after(redis_url: str) -> None:
    limiter = RateLimiter(redis_client(redis_url))
    results = [limiter.hit("login:1.2.3.4", limit=5, period=60) for _ in range(6)]
    assert [r.allowed for r in results] == [True] * 5 + [False]
    assert [r.remaining for r in results] == [4, 3, 2, 1, 0, 0]
    denied = results[-1]
    assert denied.limit == 5
    assert 11 <= denied.retry_after <= 12  # one slot frees every 60/5 = 12 s
    assert denied.retry_after_header == "12"


def test_a_refund_hands_back_what_was_spent_and_no_more(redis_url: str) -> None:
    limiter = RateLimiter(redis_client(redis_url))
    spent = [limiter.hit("k", limit=3, period=60) for _ in range(3)]
    assert [r.remaining for r in spent] == [2, 1, 0]
    limiter.refund("k", limit=3, period=60, cost=2)
    assert limiter.hit("k", limit=3, period=60).remaining == 1
    for _ in range(5):  # refunds beyond a full budget credit nothing
        limiter.refund("k", limit=3, period=60)
    assert [limiter.hit("k", limit=3, period=60).allowed for _ in range(4)] == [True] * 3 + [False]


def test_a_refund_without_redis_is_logged_not_raised(
    private_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    limiter = RateLimiter(redis_client(private_redis.url()))
    private_redis.stop()
    limiter.refund("k", limit=3, period=60)
    assert "refund dropped" in caplog.text


def test_keys_have_separate_budgets(redis_url: str) -> None:
    limiter = RateLimiter(redis_client(redis_url))
    assert limiter.hit("a", limit=1, period=60).allowed
    assert not limiter.hit("a", limit=1, period=60).allowed
    assert limiter.hit("b", limit=1, period=60).allowed


def test_budget_recovers_after_the_emission_interval(redis_url: str) -> None:
    limiter = RateLimiter(redis_client(redis_url))
    assert limiter.hit("k", limit=2, period=0.4).allowed
    assert limiter.hit("k", limit=2, period=0.4).allowed
    denied = limiter.hit("k", limit=2, period=0.4)
    assert not denied.allowed
    time.sleep(denied.retry_after + 0.02)
    assert limiter.hit("k", limit=2, period=0.4).allowed


def test_keys_expire_in_redis(redis_url: str) -> None:
    client = redis_client(redis_url)
    RateLimiter(client, prefix="rl").hit("k", limit=10, period=30)
    ttl_ms = client.pttl("rl:k")
    assert 0 < ttl_ms <= 3000


def test_one_round_trip_per_hit_once_the_script_is_loaded(redis_url: str) -> None:
    client = redis_client(redis_url)
    limiter = RateLimiter(client)
    limiter.hit("warm", limit=3, period=1)  # loads the script
    before = int(client.info("stats")["total_commands_processed"])
    limiter.hit("warm", limit=3, period=1)
    after = int(client.info("stats")["total_commands_processed"])
    # EVALSHA plus the commands it runs (TIME, GET, SET) and our first INFO.
    assert after - before <= 5


def test_concurrent_hits_never_exceed_the_limit(redis_url: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    limiter = RateLimiter(redis_client(redis_url))
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: limiter.hit("hot", 10, 60).allowed, range(40)))
    assert sum(results) == 10


async def test_async_limiter_shares_the_rules(redis_url: str) -> None:
    client = async_redis_client(redis_url)
    limiter = AsyncRateLimiter(client)
    results = await asyncio.gather(*(limiter.hit("a", 3, 60) for _ in range(5)))
    assert sorted(r.allowed for r in results) == [False, False, True, True, True]
    await client.aclose()


@pytest.mark.parametrize("fail_open", [True, False])
def test_redis_outage_fails_as_configured_and_logs(
    private_redis: RedisServer, fail_open: bool, caplog: pytest.LogCaptureFixture
) -> None:
    limiter = RateLimiter(redis_client(private_redis.url(), timeout=0.5), fail_open=fail_open)
    assert limiter.hit("k", 5, 60).allowed
    private_redis.stop()
    with caplog.at_level(logging.WARNING, logger="servicekit.ratelimit"):
        result = limiter.hit("k", 5, 60)
    assert result.allowed is fail_open
    assert result.retry_after == (0 if fail_open else 5.0)
    assert any("failing " + ("open" if fail_open else "closed") in m for m in caplog.messages)
    private_redis.start()
    recovered = limiter.hit("k", 5, 60)  # the restarted server kept no data: a fresh budget
    assert (recovered.allowed, recovered.remaining) == (True, 4)


async def test_async_redis_outage_fails_closed(private_redis: RedisServer) -> None:
    client = redis.asyncio.Redis.from_url(private_redis.url(), socket_connect_timeout=0.5)
    limiter = AsyncRateLimiter(client, fail_open=False)
    private_redis.stop()
    result = await limiter.hit("k", 5, 60)
    assert not result.allowed
    assert result.retry_after_header == "5"
    await client.aclose()


def test_invalid_rules_are_refused(redis_url: str) -> None:
    limiter = RateLimiter(redis.Redis.from_url(redis_url))
    with pytest.raises(ValueError, match="limit"):
        limiter.hit("k", limit=0, period=60)
