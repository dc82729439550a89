"""A PostgreSQL primary and a streaming replica, and the `-rw` Service in front of them.

CloudNativePG runs a primary and replicas streaming its WAL (asynchronously by default); the
services reach whichever is primary through the Service `<cluster>-rw`. On a switchover or a
failover the operator promotes a replica and re-points that Service. Here: Debian's PostgreSQL,
a replica made with pg_basebackup -R, both bound to the test's lifetime (harness.lifetime), and
a TCP forwarder (harness.forwarder) for the Service.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg

from harness.forwarder import TcpForwarder
from harness.servers import START_TIMEOUT, HarnessError, PostgresServer


@dataclass
class PostgresPair:
    """`primary` streams to `replica`; `service` forwards to the primary. After `promote` the
    promoted replica is `primary` and the old primary `replica`, down (CloudNativePG would
    rewind it into a replica; nothing here needs that)."""

    primary: PostgresServer
    replica: PostgresServer
    service: TcpForwarder

    def url(self, database: str = "postgres") -> str:
        """An admin URL through the Service, as the services are given it (trust: no password)."""
        return f"postgresql://{self.primary.user}@127.0.0.1:{self.service.port}/{database}"

    def wait_until_streaming(self, timeout: float = START_TIMEOUT) -> None:
        """The replica streams from the primary and has replayed everything committed so far."""
        with psycopg.connect(self.primary.url(), autocommit=True) as conn:
            # The primary sends flushed WAL only. A synchronous commit of a transaction that
            # wrote WAL (a logical message, nothing else) flushes all before it, asynchronous
            # commits' too.
            conn.execute("SET synchronous_commit TO on")
            conn.execute("SELECT pg_logical_emit_message(true, 'harness', 'flush')")
            written = conn.execute("SELECT pg_current_wal_flush_lsn()").fetchone()
        assert written is not None
        query = (
            "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn"
            " AND (SELECT status FROM pg_stat_wal_receiver) = 'streaming'"
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with psycopg.connect(self.replica.url(), autocommit=True) as conn:
                row = conn.execute(query, (written[0],)).fetchone()
            if row is not None and row[0]:
                return
            time.sleep(0.05)
        raise HarnessError(f"the replica did not catch up with {written[0]} in {timeout:.0f}s")

    def replicate_synchronously(self, timeout: float = START_TIMEOUT) -> None:
        """A commit is acknowledged once the replica has flushed it too (as CloudNativePG's
        `postgresql.synchronous` with `dataDurability: required` sets up); returns once the
        primary names the replica synchronous. Needs a durable pair: a throw-away server runs
        with synchronous_commit off, and no commit would wait."""
        if not self.primary.durable:
            raise HarnessError("replicate_synchronously needs postgres_pair(durable=True)")
        with psycopg.connect(self.primary.url(), autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET synchronous_standby_names TO '*'")
            conn.execute("SELECT pg_reload_conf()")
            deadline = time.monotonic() + timeout
            query = "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'"
            while conn.execute(query).fetchone() != (1,):
                if time.monotonic() > deadline:
                    raise HarnessError(f"the replica was not synchronous after {timeout:.0f}s")
                time.sleep(0.05)

    def promote(self) -> None:
        """The replica becomes the primary, and the Service points at it (resetting whatever
        connections were left to the old one)."""
        self.replica.promote()
        self.service.point_to(self.replica.port)
        self.primary, self.replica = self.replica, self.primary

    def rejoin(self) -> None:
        """The old primary (down since `promote`) replaced by a fresh replica of the new one,
        streaming: ready for another promotion (CloudNativePG rewinds or re-clones it)."""
        fresh = PostgresServer(durable=self.primary.durable)
        fresh.init_replica_of(self.primary)
        fresh.start()
        self.replica.destroy()
        self.replica = fresh
        self.wait_until_streaming()

    def destroy(self) -> None:
        self.service.stop()
        for server in (self.replica, self.primary):
            server.destroy()


@contextlib.contextmanager
def postgres_pair(*, durable: bool = True) -> Iterator[PostgresPair]:
    """A running primary, its streaming replica and the Service; all gone on leaving.

    `durable` (the default) keeps fsync and synchronous_commit on, as CloudNativePG does:
    what the primary acknowledged is on its disk, not necessarily on the replica's.
    """
    primary = PostgresServer(durable=durable)
    replica = PostgresServer(durable=durable)
    service = TcpForwarder(primary.port)
    pair = PostgresPair(primary, replica, service)
    try:
        primary.init()
        primary.start()
        replica.init_replica_of(primary)
        replica.start()
        service.start()
        pair.wait_until_streaming()
        yield pair
    finally:
        pair.destroy()
