"""Redis rate limiting with GCRA (generic cell rate algorithm) in one Lua script round trip.

A rule allows `limit` requests per `period` seconds, with bursts up to `limit`. Redis keeps a
single "theoretical arrival time" per key and its own clock (`TIME`) decides, so every replica of
a service shares one consistent budget. When Redis is unreachable the limiter fails open (allow)
or closed (deny) as configured, and logs a warning.

A request that turns out not to count (it succeeded, or the server could not serve it) can hand
its cost back with `refund`: spend first, so concurrent requests cannot all pass before any is
counted, and refund what should not have cost anything. Within `charges_of_this_request()`
(servicekit.fastapi opens one per request) every allowed `hit` is recorded, so the middleware
hands it all back when the answer is a 5xx: a request the server could not serve costs nothing.

`RateLimiter` (redis.Redis) and `AsyncRateLimiter` (redis.asyncio.Redis) share `_RateLimitCore`.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
import redis
import redis.asyncio

logger = logging.getLogger(__name__)

# KEYS[1] = bucket key; ARGV = limit, period (seconds), cost. Returns
# {allowed (0/1), remaining, retry_after (string: Lua numbers would be truncated to integers)}.
_GCRA = """
local limit = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local interval = period / limit
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
local new_tat = tat + cost * interval
local allow_at = new_tat - period
if allow_at > now + 1e-9 then
  local remaining = math.floor((period - (tat - now)) / interval + 1e-9)
  return {0, remaining, tostring(allow_at - now)}
end
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil((new_tat - now) * 1000))
local remaining = math.floor((period - (new_tat - now)) / interval + 1e-9)
return {1, remaining, '0'}
"""


# KEYS[1] = bucket key; ARGV = limit, period, cost. Moves the theoretical arrival time back by
# `cost` intervals (never before now: nothing is credited beyond a full budget).
_REFUND = """
local interval = tonumber(ARGV[2]) / tonumber(ARGV[1])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil then return 0 end
local new_tat = tat - tonumber(ARGV[3]) * interval
if new_tat <= now then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil((new_tat - now) * 1000))
end
return 1
"""


@dataclass(frozen=True)
class RateLimitResult:
    allowed: bool
    limit: int
    remaining: int
    retry_after: float  # seconds until the request would be allowed; 0 when allowed

    @property
    def retry_after_header(self) -> str:
        """Value for a Retry-After header: whole seconds, at least 1."""
        return str(max(1, math.ceil(self.retry_after)))


@dataclass(frozen=True)
class _RateLimitCore:
    prefix: str
    fail_open: bool
    closed_retry_after: float

    def args(self, key: str, limit: int, period: float, cost: int) -> tuple[str, list[Any]]:
        if limit < 1 or period <= 0 or cost < 1:
            raise ValueError("limit and cost must be >= 1 and period > 0")
        return f"{self.prefix}:{key}", [limit, period, cost]

    @staticmethod
    def result(raw: Any, limit: int) -> RateLimitResult:
        allowed, remaining, retry_after = raw
        return RateLimitResult(
            allowed=bool(int(allowed)),
            limit=limit,
            remaining=max(0, int(remaining)),
            retry_after=float(retry_after),
        )

    @staticmethod
    def refund_dropped(key: str, exc: Exception) -> None:
        logger.warning(
            "rate limiter cannot reach Redis; refund dropped",
            extra={"rate_limit_key": key, "error": repr(exc)},
        )

    def unavailable(self, key: str, limit: int, exc: Exception) -> RateLimitResult:
        mode = "open" if self.fail_open else "closed"
        logger.warning(
            "rate limiter cannot reach Redis; failing %s",
            mode,
            extra={"rate_limit_key": key, "error": repr(exc)},
        )
        if self.fail_open:
            return RateLimitResult(allowed=True, limit=limit, remaining=limit, retry_after=0.0)
        return RateLimitResult(
            allowed=False, limit=limit, remaining=0, retry_after=self.closed_retry_after
        )


@dataclass
class Charges:
    """The costs spent by allowed hits while serving one request (see `charges_of_this_request`)."""

    spent: list[tuple[RateLimiter | AsyncRateLimiter, str, int, float, int]] = field(
        default_factory=list
    )

    async def refund_all(self) -> None:
        for limiter, key, limit, period, cost in self.spent:
            if isinstance(limiter, AsyncRateLimiter):
                await limiter.refund(key, limit, period, cost)
            else:
                await anyio.to_thread.run_sync(limiter.refund, key, limit, period, cost)
        self.spent.clear()


_charges: contextvars.ContextVar[Charges | None] = contextvars.ContextVar(
    "rate_limit_charges", default=None
)


@contextlib.contextmanager
def charges_of_this_request() -> Iterator[Charges]:
    """Record every allowed hit made in this context (threads it starts included)."""
    charges = Charges()
    token = _charges.set(charges)
    try:
        yield charges
    finally:
        _charges.reset(token)


def _record(limiter: RateLimiter | AsyncRateLimiter, args: tuple[str, int, float, int]) -> None:
    charges = _charges.get()
    if charges is not None:
        charges.spent.append((limiter, *args))


class RateLimiter:
    """Synchronous limiter. `hit(key, limit, period)` spends `cost` from the key's budget."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = "ratelimit",
        fail_open: bool = True,
        closed_retry_after: float = 5.0,
    ) -> None:
        self._core = _RateLimitCore(prefix, fail_open, closed_retry_after)
        self._script = client.register_script(_GCRA)
        self._refund = client.register_script(_REFUND)

    def hit(self, key: str, limit: int, period: float, cost: int = 1) -> RateLimitResult:
        redis_key, argv = self._core.args(key, limit, period, cost)
        try:
            raw = self._script(keys=[redis_key], args=argv)
        except redis.RedisError as exc:
            return self._core.unavailable(redis_key, limit, exc)
        result = self._core.result(raw, limit)
        if result.allowed:
            _record(self, (key, limit, period, cost))
        return result

    def refund(self, key: str, limit: int, period: float, cost: int = 1) -> None:
        """Hand back `cost` spent by `hit` with the same rule. Best effort: without Redis the
        cost stays spent (logged), which errs on the side of the limit."""
        redis_key, argv = self._core.args(key, limit, period, cost)
        try:
            self._refund(keys=[redis_key], args=argv)
        except redis.RedisError as exc:
            self._core.refund_dropped(redis_key, exc)


class AsyncRateLimiter:
    """Asynchronous limiter over `redis.asyncio.Redis`, same rules as `RateLimiter`."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        *,
        prefix: str = "ratelimit",
        fail_open: bool = True,
        closed_retry_after: float = 5.0,
    ) -> None:
        self._core = _RateLimitCore(prefix, fail_open, closed_retry_after)
        self._script = client.register_script(_GCRA)
        self._refund = client.register_script(_REFUND)

    async def hit(self, key: str, limit: int, period: float, cost: int = 1) -> RateLimitResult:
        redis_key, argv = self._core.args(key, limit, period, cost)
        try:
            raw = await self._script(keys=[redis_key], args=argv)
        except redis.RedisError as exc:
            return self._core.unavailable(redis_key, limit, exc)
        result = self._core.result(raw, limit)
        if result.allowed:
            _record(self, (key, limit, period, cost))
        return result

    async def refund(self, key: str, limit: int, period: float, cost: int = 1) -> None:
        """As `RateLimiter.refund`."""
        redis_key, argv = self._core.args(key, limit, period, cost)
        try:
            await self._refund(keys=[redis_key], args=argv)
        except redis.RedisError as exc:
            self._core.refund_dropped(redis_key, exc)
