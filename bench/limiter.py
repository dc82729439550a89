"""servicekit's GCRA limiter vs a plain EVALSHA of the same Lua script, one connection each.

The anchor is what the limiter cannot do faster than: one EVALSHA round trip of its script. The
difference is servicekit's own Python around it (arguments, result parsing, the script object).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import redis
from harness.servers import RedisServer
from servicekit.ratelimit import _GCRA, RateLimiter

from bench.table import Row, p50

CALLS = 5000
ROUNDS = 10  # ours and the anchor take turns, so a change of load hits both alike
LIMIT, PERIOD = 1_000_000, 60.0


def timed_calls(call: Callable[[], None], count: int, samples: list[float]) -> float:
    """Seconds for `count` calls of `call()`; each call's time is appended to `samples`."""
    started = time.perf_counter()
    for _ in range(count):
        before = time.perf_counter()
        call()
        samples.append(time.perf_counter() - before)
    return time.perf_counter() - started


def run() -> list[Row]:
    server = RedisServer(databases=16)
    server.start()
    try:
        ours_client = redis.Redis.from_url(server.url(1), socket_timeout=5)
        anchor_client = redis.Redis.from_url(server.url(2), socket_timeout=5)
        limiter = RateLimiter(ours_client, prefix="bench")
        sha = anchor_client.script_load(_GCRA)
        limiter.hit("warm", LIMIT, PERIOD)

        def ours() -> None:
            if not limiter.hit("user", LIMIT, PERIOD).allowed:
                raise RuntimeError("the limiter refused below its limit")

        def anchor() -> None:
            anchor_client.evalsha(sha, 1, "bench:user", LIMIT, PERIOD, 1)

        ours_samples: list[float] = []
        anchor_samples: list[float] = []
        ours_seconds = anchor_seconds = 0.0
        for _ in range(ROUNDS):
            ours_seconds += timed_calls(ours, CALLS // ROUNDS, ours_samples)
            anchor_seconds += timed_calls(anchor, CALLS // ROUNDS, anchor_samples)
        ours_rate, anchor_rate = CALLS / ours_seconds, CALLS / anchor_seconds
        ours_client.close()
        anchor_client.close()
    finally:
        server.destroy()
    note = f"{CALLS:,} calls each on one connection, taking turns; anchor: EVALSHA of the script"
    return [
        Row("rate limiter: checks per second", ours_rate, anchor_rate, "/s", note),
        Row("rate limiter: p50 latency per check", p50(ours_samples), p50(anchor_samples), "us"),
    ]
