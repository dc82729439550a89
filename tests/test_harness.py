"""The harness itself: real servers, isolation between tests, stop and restart."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest
import redis
from harness.servers import HarnessError, PostgresServer, RedisServer


def test_each_test_gets_an_empty_database(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute("CREATE TABLE marker (id int)")
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
    assert tables == (1,)


def test_databases_are_distinct_per_request(
    make_database: Callable[[], str], database_url: str
) -> None:
    other = make_database()
    assert other != database_url
    with psycopg.connect(other) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (other.rsplit("/", 1)[1],)


def test_each_test_gets_an_empty_redis_keyspace(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    assert client.dbsize() == 0
    client.set("marker", "1")
    client.close()


def test_redis_keyspaces_do_not_leak_between_tests(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    assert client.get("marker") is None
    client.close()


def test_private_postgres_stops_and_restarts(private_postgres: PostgresServer) -> None:
    private_postgres.stop()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(private_postgres.url(), connect_timeout=1)
    private_postgres.start()
    with psycopg.connect(private_postgres.url()) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_private_redis_stops_and_restarts(private_redis: RedisServer) -> None:
    private_redis.stop()
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(private_redis.url(), socket_timeout=1).ping()
    private_redis.start()
    assert redis.Redis.from_url(private_redis.url()).ping()


def test_missing_redis_binary_is_an_error_naming_the_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(HarnessError, match="apt-get install"):
        RedisServer().start()
