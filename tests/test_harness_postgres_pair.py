"""The PostgreSQL primary/replica pair and the Service stand-in that failover tests rely on."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from collections.abc import Iterator

import psycopg
import pytest
from harness.forwarder import TcpForwarder
from harness.postgres_pair import PostgresPair, postgres_pair
from harness.servers import HarnessError, PostgresServer


@pytest.fixture
def pair() -> Iterator[PostgresPair]:
    with postgres_pair(durable=False) as started:
        yield started


def _port_of_server(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT inet_server_port()").fetchone()
    assert row is not None
    return int(row[0])


def test_the_replica_streams_what_the_primary_commits_and_refuses_writes(
    pair: PostgresPair,
) -> None:
    with psycopg.connect(pair.url(), autocommit=True) as conn:
        conn.execute("CREATE TABLE notes (n int)")
        conn.execute("INSERT INTO notes SELECT generate_series(1, 100)")
    pair.wait_until_streaming()
    with psycopg.connect(pair.replica.url(), autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM notes").fetchone() == (100,)
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("INSERT INTO notes VALUES (101)")


def test_promotion_after_a_clean_stop_keeps_every_commit_and_moves_the_service(
    pair: PostgresPair,
) -> None:
    old_primary, replica = pair.primary, pair.replica
    with psycopg.connect(pair.url(), autocommit=True) as conn:
        conn.execute("CREATE TABLE notes (n int)")
        conn.execute("INSERT INTO notes SELECT generate_series(1, 1000)")
    held = psycopg.connect(pair.url(), autocommit=True)
    assert _port_of_server(pair.url()) == old_primary.port

    old_primary.stop()  # fast shutdown: the primary sends its last WAL to the replica first
    pair.promote()

    assert pair.primary is replica
    assert _port_of_server(pair.url()) == replica.port
    with pytest.raises(psycopg.OperationalError):
        held.execute("SELECT 1")  # the connection to the old primary is gone
    held.close()
    with psycopg.connect(pair.url(), autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM notes").fetchone() == (1000,)
        conn.execute("INSERT INTO notes VALUES (1001)")  # a primary now: it takes writes
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)


def test_kill_takes_the_postmaster_and_every_backend(private_postgres: PostgresServer) -> None:
    held = psycopg.connect(private_postgres.url(), autocommit=True)
    backend_pid = held.info.backend_pid
    private_postgres.kill()
    assert private_postgres.process is None
    assert not _alive(backend_pid), "a backend outlived its postmaster's kill -9"
    with pytest.raises(psycopg.OperationalError):
        held.execute("SELECT 1")
    held.close()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class _TaggingServer(socketserver.ThreadingTCPServer):
    """Answers each read with its tag and what was read: which server answered?"""

    daemon_threads = True

    def __init__(self, tag: bytes) -> None:
        super().__init__(("127.0.0.1", 0), _TagHandler)
        self.tag = tag


class _TagHandler(socketserver.BaseRequestHandler):
    server: _TaggingServer

    def handle(self) -> None:
        while data := self.request.recv(1024):
            self.request.sendall(self.server.tag + data)


@contextlib.contextmanager
def _tagging_server(tag: bytes) -> Iterator[int]:
    with _TaggingServer(tag) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield server.server_address[1]
        server.shutdown()


def _exchange(sock: socket.socket, data: bytes) -> bytes:
    sock.sendall(data)
    return sock.recv(64)


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), 5)


def test_forwarder_without_a_target_refuses_and_a_repoint_resets_open_connections() -> None:
    with (
        _tagging_server(b"1:") as first,
        _tagging_server(b"2:") as second,
        TcpForwarder(None) as service,
    ):
        # No endpoint: reset at once (seen by connect itself when it comes that soon).
        with pytest.raises(ConnectionResetError), _connect(service.port) as refused:
            refused.recv(16)
        service.point_to(first)
        with _connect(service.port) as held:
            assert _exchange(held, b"ping") == b"1:ping"
            service.point_to(second)
            with pytest.raises(ConnectionResetError):
                _exchange(held, b"again")  # reset, not answered by either server
        with _connect(service.port) as moved:
            assert _exchange(moved, b"pong") == b"2:pong"
        assert (service.accepted, service.reset) == (3, 2)


@pytest.fixture
def durable_pair() -> Iterator[PostgresPair]:
    with postgres_pair() as started:
        yield started


def test_synchronous_replication_needs_a_durable_pair(pair: PostgresPair) -> None:
    with pytest.raises(HarnessError, match="durable"):
        pair.replicate_synchronously()


def test_synchronous_replication_then_promotion_then_rejoin(durable_pair: PostgresPair) -> None:
    pair = durable_pair
    pair.replicate_synchronously()
    with psycopg.connect(pair.url(), autocommit=True) as conn:
        conn.execute("CREATE TABLE notes (n int)")
        conn.execute("INSERT INTO notes VALUES (1)")  # acknowledged: flushed on the replica too
    pair.primary.kill()
    pair.promote()
    with psycopg.connect(pair.url(), autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM notes").fetchone() == (1,)
        # The promoted replica got no synchronous_standby_names: writes go on without one.
        conn.execute("INSERT INTO notes VALUES (2)")
    pair.rejoin()  # a fresh replica of the new primary, streaming
    with psycopg.connect(pair.replica.url(), autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM notes").fetchone() == (2,)
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
