"""The harness itself: real servers, isolation between tests, stop and restart."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
import redis
from harness.servers import HarnessError, PostgresServer, RedisServer, free_port


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


def _alive(pid: int) -> bool:
    """Running, not merely a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_servers_die_with_a_runner_killed_by_sigkill(tmp_path: Path) -> None:
    # A CI timeout SIGKILLs the runner: no finally, no fixture teardown. The servers it started
    # must go anyway (harness.lifetime), or they pile up on a shared machine.
    script = (
        "import sys; from harness.servers import PostgresServer, RedisServer\n"
        "pg = PostgresServer().init(); pg.start(); r = RedisServer(); r.start()\n"
        "print(pg.process.pid, r.process.pid, flush=True); sys.stdin.read()\n"
    )
    tests = Path(__file__).parent
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tests), str(tests.parent / "ci" / "src")]),
    }
    runner = subprocess.Popen(
        [sys.executable, "-c", script], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert runner.stdout is not None
    pids = [int(pid) for pid in runner.stdout.readline().split()]
    assert len(pids) == 2
    assert all(_alive(pid) for pid in pids)

    runner.kill()
    runner.wait()

    deadline = time.monotonic() + 60
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in pids if _alive(pid)], "servers outlived their runner"


def test_weed_starts_again_on_new_ports_when_one_was_taken_before_it_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A free port can be taken between choosing it and weed binding it (a loaded machine
    running other servers): weed exits, and the harness starts it again on new ports."""
    import socket

    from harness import s3

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    choices = iter([taken.getsockname()[1]])  # the master's port, on the first try only
    monkeypatch.setattr(s3, "free_port", lambda: next(choices, None) or free_port())
    with taken, s3.weed_s3_server(tmp_path) as server:
        assert "address already in use" in server.log.read_text()
        assert server.make_bucket("taken-port")
