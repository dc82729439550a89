"""Liveness and readiness.

Liveness says the process serves requests; it never touches dependencies (a database outage
must not get every pod restarted). Readiness runs each dependency check with a short timeout,
concurrently, and reports JSON plus 200 (all ok) or 503 (any failed).

A check is a callable that returns on success and raises on failure; sync checks run in a
thread. `run_checks` (async) takes sync and async checks; `run_checks_sync` takes sync ones.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis
import redis.asyncio

from servicekit.redisconn import RedisTarget, redis_client

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.ext.asyncio import AsyncEngine

logger = logging.getLogger(__name__)

SyncCheck = Callable[[], object]
AsyncCheck = Callable[[], Awaitable[object]]
Check = SyncCheck | AsyncCheck

DEFAULT_TIMEOUT = 2.0


@dataclass(frozen=True)
class HealthReport:
    status_code: int  # 200 or 503
    body: dict[str, Any]


def liveness() -> HealthReport:
    return HealthReport(200, {"status": "ok"})


def _outcome(name: str, started: float, error: BaseException | None) -> dict[str, Any]:
    elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
    if error is None:
        return {"status": "ok", "duration_ms": elapsed_ms}
    # Details go to the log, not to anonymous callers.
    reason = "timed out" if isinstance(error, TimeoutError) else type(error).__name__
    logger.warning("readiness check failed", extra={"check": name, "error": repr(error)})
    return {"status": "error", "error": reason, "duration_ms": elapsed_ms}


def _report(results: Mapping[str, dict[str, Any]]) -> HealthReport:
    ok = all(result["status"] == "ok" for result in results.values())
    body = {"status": "ok" if ok else "unavailable", "checks": dict(results)}
    return HealthReport(200 if ok else 503, body)


async def _run_one(name: str, check: Check, check_timeout: float) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        if inspect.iscoroutinefunction(check):
            await asyncio.wait_for(check(), check_timeout)
        else:
            await asyncio.wait_for(asyncio.to_thread(check), check_timeout)
    except Exception as exc:  # any failure of a dependency means "not ready"
        return _outcome(name, started, exc)
    return _outcome(name, started, None)


async def run_checks(
    checks: Mapping[str, Check], check_timeout: float = DEFAULT_TIMEOUT
) -> HealthReport:
    """Every check concurrently, each bounded by `check_timeout` seconds."""
    names = list(checks)
    results = await asyncio.gather(*(_run_one(n, checks[n], check_timeout) for n in names))
    return _report(dict(zip(names, results, strict=True)))


def run_checks_sync(
    checks: Mapping[str, SyncCheck], timeout: float = DEFAULT_TIMEOUT
) -> HealthReport:
    """For WSGI services: each check in its own thread, all bounded by `timeout`."""
    results: dict[str, dict[str, Any]] = {}
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(checks)))
    try:
        started = time.perf_counter()
        futures = {name: pool.submit(check) for name, check in checks.items()}
        for name, future in futures.items():
            remaining = max(0.0, timeout - (time.perf_counter() - started))
            try:
                future.result(timeout=remaining)
            except Exception as exc:
                results[name] = _outcome(name, started, exc)
            else:
                results[name] = _outcome(name, started, None)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # never wait on a hung check
    return _report(results)


def postgres_check(target: str | Engine, timeout: float = DEFAULT_TIMEOUT) -> SyncCheck:
    """`SELECT 1` through a SQLAlchemy engine, or a fresh psycopg connection for a DSN."""
    if isinstance(target, str):
        dsn = target

        def check_dsn() -> None:
            import psycopg  # optional dependency: servicekit[postgres]

            connect_timeout = max(1, math.ceil(timeout))
            with psycopg.connect(dsn, connect_timeout=connect_timeout) as conn:
                conn.execute("SELECT 1")

        return check_dsn

    engine = target

    def check_engine() -> None:
        from sqlalchemy import text

        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    return check_engine


def async_postgres_check(engine: AsyncEngine) -> AsyncCheck:
    async def check() -> None:
        from sqlalchemy import text

        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    return check


def redis_check(
    target: str | RedisTarget | redis.Redis, timeout: float = DEFAULT_TIMEOUT
) -> SyncCheck:
    """PING through the given client, or a short-lived client for a URL or Sentinel target."""

    def check() -> None:
        if not isinstance(target, redis.Redis):
            client = redis_client(target, timeout=timeout)
            try:
                client.ping()
            finally:
                client.close()
        else:
            target.ping()

    return check


def async_redis_check(client: redis.asyncio.Redis) -> AsyncCheck:
    async def check() -> None:
        await client.ping()

    return check
