"""Readiness checks against real PostgreSQL and Redis, including stopped servers and hangs."""

from __future__ import annotations

import asyncio
import time

import redis
import redis.asyncio
from harness.servers import PostgresServer, RedisServer, free_port
from servicekit.health import (
    async_postgres_check,
    async_redis_check,
    liveness,
    postgres_check,
    redis_check,
    run_checks,
    run_checks_sync,
)
from servicekit.settings import sqlalchemy_url
from sqlalchemy import create_engine
from sqlalchemy.ext.asyncio import create_async_engine


def test_liveness_is_always_ok() -> None:
    assert liveness().status_code == 200


async def test_ready_when_every_dependency_answers(database_url: str, redis_url: str) -> None:
    engine = create_engine(sqlalchemy_url(database_url))
    async_engine = create_async_engine(sqlalchemy_url(database_url))
    async_client = redis.asyncio.Redis.from_url(redis_url)
    report = await run_checks(
        {
            "postgres-dsn": postgres_check(database_url),
            "postgres-engine": postgres_check(engine),
            "postgres-async": async_postgres_check(async_engine),
            "redis-url": redis_check(redis_url),
            "redis-client": redis_check(redis.Redis.from_url(redis_url)),
            "redis-async": async_redis_check(async_client),
        }
    )
    assert report.status_code == 200, report.body
    assert report.body["status"] == "ok"
    assert {c["status"] for c in report.body["checks"].values()} == {"ok"}
    engine.dispose()
    await async_engine.dispose()
    await async_client.aclose()


async def test_not_ready_while_postgres_is_stopped_and_ready_after(
    private_postgres: PostgresServer, redis_url: str
) -> None:
    checks = {"postgres": postgres_check(private_postgres.url()), "redis": redis_check(redis_url)}
    assert (await run_checks(checks)).status_code == 200
    private_postgres.stop()
    report = await run_checks(checks)
    assert report.status_code == 503
    assert report.body["checks"]["postgres"]["status"] == "error"
    assert report.body["checks"]["redis"]["status"] == "ok"
    private_postgres.start()
    assert (await run_checks(checks)).status_code == 200


def test_sync_runner_reports_a_stopped_redis(private_redis: RedisServer) -> None:
    checks = {"redis": redis_check(private_redis.url(), timeout=0.5)}
    assert run_checks_sync(checks).status_code == 200
    private_redis.stop()
    report = run_checks_sync(checks)
    assert report.status_code == 503
    assert report.body["checks"]["redis"]["status"] == "error"


def test_a_hanging_check_times_out_quickly() -> None:
    def hangs() -> None:
        time.sleep(3)

    started = time.perf_counter()
    report = run_checks_sync({"slow": hangs, "fine": lambda: None}, timeout=0.3)
    assert time.perf_counter() - started < 1.5
    assert report.body["checks"]["slow"] == {
        "status": "error",
        "error": "timed out",
        "duration_ms": report.body["checks"]["slow"]["duration_ms"],
    }
    assert report.body["checks"]["fine"]["status"] == "ok"


async def test_a_hanging_async_check_times_out() -> None:
    async def hangs() -> None:
        await asyncio.sleep(3)

    started = time.perf_counter()
    report = await run_checks({"slow": hangs}, check_timeout=0.3)
    assert time.perf_counter() - started < 1.5
    assert report.status_code == 503


def test_unreachable_dsn_is_an_error_not_an_exception() -> None:
    dsn = f"postgresql://nobody@127.0.0.1:{free_port()}/none"
    report = run_checks_sync({"postgres": postgres_check(dsn, timeout=1)})
    assert report.status_code == 503
    assert report.body["checks"]["postgres"]["error"] == "OperationalError"
