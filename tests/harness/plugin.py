"""Pytest fixtures: one PostgreSQL and one Redis server per test session, isolated per test.

Every test that asks for `database_url` gets a fresh database, and every test that asks for
`redis_url` gets its own flushed logical Redis database, so tests pass in any order.
TEST_DATABASE_URL (an admin URL allowed to create databases) and TEST_REDIS_URL replace the
servers the session would start.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import redis

from harness.s3 import S3Server, weed_s3_server
from harness.sentinel import SentinelGroup
from harness.servers import PostgresServer, RedisServer
from harness.tokens import token_issuer

__all__ = ["token_issuer"]  # fixtures defined elsewhere, registered by importing them here


def _with_path(url: str, path: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """URL of a PostgreSQL role that may create databases."""
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield external
        return
    server = PostgresServer().init()
    server.start()
    try:
        yield server.url()
    finally:
        server.destroy()


@pytest.fixture
def database_url(make_database: Callable[[], str]) -> str:
    """A fresh, empty database for this test (`postgresql://` URL), dropped afterwards."""
    return make_database()


@pytest.fixture(scope="session")
def redis_base_url() -> Iterator[str]:
    external = os.environ.get("TEST_REDIS_URL")
    if external:
        yield external
        return
    server = RedisServer()
    server.start()
    try:
        yield server.url()
    finally:
        server.destroy()


@pytest.fixture(scope="session")
def _redis_databases(redis_base_url: str) -> Iterator[int]:
    """Cycles through the server's logical databases, skipping 0 (left to humans)."""
    client = redis.Redis.from_url(redis_base_url)
    count = int(str(client.config_get("databases")["databases"]))
    client.close()
    return itertools.cycle(range(1, count))


@pytest.fixture
def redis_url(redis_base_url: str, _redis_databases: Iterator[int]) -> str:
    """A `redis://` URL of a logical database of this test's own, flushed before use."""
    url = _with_path(redis_base_url, f"/{next(_redis_databases)}")
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    return url


@pytest.fixture
def private_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own, for tests that stop and restart it."""
    server = PostgresServer().init()
    server.start()
    yield server
    server.destroy()


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A Redis server of this test's own, for tests that stop and restart it."""
    server = RedisServer()
    server.start()
    yield server
    server.destroy()


@pytest.fixture
def sentinel_group() -> Iterator[SentinelGroup]:
    """A Redis primary, one replica and three Sentinels of this test's own (failover tests)."""
    group = SentinelGroup()
    try:
        yield group.start()
    finally:
        group.destroy()


@pytest.fixture
def make_database(postgres_admin_url: str) -> Iterator[Callable[[], str]]:
    """Factory for extra fresh databases within one test (e.g. one per service)."""
    created: list[str] = []

    def make() -> str:
        name = f"test_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return _with_path(postgres_admin_url, f"/{name}")

    yield make
    with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
        for name in created:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One real S3 server (SeaweedFS `weed`) per session; tests take buckets of their own."""
    with weed_s3_server(tmp_path_factory.mktemp("s3")) as server:
        yield server
