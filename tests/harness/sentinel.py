"""A Redis primary, its replicas and the Sentinels that watch them, as real processes.

Debian's redis-server and redis-sentinel (Valkey speaks the same protocol and Sentinel
commands), each on a free loopback port in a temporary directory and bound to the test's
lifetime. Sentinels decide quickly (`down_after_ms`), so failover tests wait for conditions of
a few seconds, not minutes. With a `password`, servers and Sentinels all require it, as
charts/redis does.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import redis

from harness.lifetime import bound_to_parent
from harness.servers import START_TIMEOUT, HarnessError, RedisServer, free_port, wait_for_port

SENTINEL_HINT = "sudo apt-get install -y redis-sentinel  (or run `make setup`)"


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Polls `condition` until it holds; returns the seconds it took, or fails naming `what`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(0.05)
    raise HarnessError(f"{what}: not after {timeout:.0f}s")


@dataclass
class SentinelServer:
    """One redis-sentinel process watching the primary named `master`."""

    master: str
    primary_port: int
    quorum: int
    down_after_ms: int
    password: str | None = field(default=None, repr=False)
    port: int = field(default_factory=free_port)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="sentinel-")))
    process: subprocess.Popen[bytes] | None = None

    def _config_file(self) -> Path:
        # Sentinel rewrites this file with what it learns (replicas, other Sentinels, epochs).
        settings = [
            f"port {self.port}", "bind 127.0.0.1", f'dir "{self.workdir}"',
            f"sentinel monitor {self.master} 127.0.0.1 {self.primary_port} {self.quorum}",
            f"sentinel down-after-milliseconds {self.master} {self.down_after_ms}",
            f"sentinel failover-timeout {self.master} {self.down_after_ms * 10}",
            f"sentinel parallel-syncs {self.master} 1",
        ]  # fmt: skip
        if self.password:  # for the servers, its own clients, and the other Sentinels
            settings += [
                f'sentinel auth-pass {self.master} "{self.password}"',
                f'requirepass "{self.password}"',
                f'sentinel sentinel-pass "{self.password}"',
            ]
        path = self.workdir / "sentinel.conf"
        path.touch(mode=0o600)
        path.write_text("\n".join(settings) + "\n")
        return path

    def start(self) -> None:
        binary = shutil.which("redis-sentinel")
        if binary is None:
            raise HarnessError(f"redis-sentinel not found; install it: {SENTINEL_HINT}")
        with (self.workdir / "sentinel.log").open("ab") as log:
            self.process = subprocess.Popen(
                bound_to_parent([binary, str(self._config_file())]),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for_port(self.port)

    def client(self) -> redis.Redis:
        return redis.Redis(
            port=self.port, password=self.password, socket_timeout=2, decode_responses=True
        )

    def destroy(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=START_TIMEOUT)
            self.process = None
        shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass
class SentinelGroup:
    """A primary, `replicas` replicas of it and `sentinels` Sentinels (quorum: a majority)."""

    master: str = "chat"
    replicas: int = 1
    sentinels: int = 3
    down_after_ms: int = 500
    password: str | None = field(default=None, repr=False)
    servers: list[RedisServer] = field(default_factory=list)
    watchers: list[SentinelServer] = field(default_factory=list)

    def start(self) -> SentinelGroup:
        # Any server may become a replica after a failover: each knows the password to replicate.
        auth = (f'masterauth "{self.password}"',) if self.password else ()
        primary = RedisServer(databases=16, password=self.password, extra_settings=auth)
        primary.start()
        self.servers.append(primary)
        for _ in range(self.replicas):
            replica = RedisServer(
                databases=16,
                password=self.password,
                extra_settings=(*auth, f"replicaof 127.0.0.1 {primary.port}"),
            )
            replica.start()
            self.servers.append(replica)
        quorum = self.sentinels // 2 + 1
        for _ in range(self.sentinels):
            watcher = SentinelServer(
                self.master, primary.port, quorum, self.down_after_ms, self.password
            )
            watcher.start()
            self.watchers.append(watcher)
        self.wait_until_watched()
        return self

    def addresses(self) -> str:
        """REDIS_SENTINELS for a client: `127.0.0.1:port,...`."""
        return ",".join(f"127.0.0.1:{w.port}" for w in self.watchers)

    def primary_port(self, watcher: SentinelServer | None = None) -> int | None:
        """The primary's port as a Sentinel (the first by default) names it now."""
        # redis-py types Sentinel answers loosely: a (host, port) pair, or None when unknown.
        try:
            with (watcher or self.watchers[0]).client() as client:
                found: Any = client.sentinel_get_master_addr_by_name(self.master)
        except redis.RedisError:
            return None
        return int(found[1]) if found else None

    def _knows_everyone(self, watcher: SentinelServer) -> bool:
        try:
            with watcher.client() as client:
                replicas: list[dict[str, Any]] = cast(Any, client.sentinel_slaves(self.master))
                others: list[dict[str, Any]] = cast(Any, client.sentinel_sentinels(self.master))
        except redis.RedisError:
            return False
        online = [
            r for r in replicas if "s_down" not in r["flags"] and r["master-link-status"] == "ok"
        ]
        return len(online) == self.replicas and len(others) == self.sentinels - 1

    def wait_until_watched(self, timeout: float = START_TIMEOUT) -> None:
        """Every Sentinel sees every replica in sync and every other Sentinel: able to fail over."""
        wait_for(
            lambda: all(self._knows_everyone(w) for w in self.watchers),
            timeout,
            "the Sentinels never saw every replica and one another",
        )

    def server_on(self, port: int) -> RedisServer:
        return next(server for server in self.servers if server.port == port)

    def kill_primary(self) -> RedisServer:
        """SIGKILL of the current primary; returns it (its process gone)."""
        port = self.primary_port()
        if port is None:
            raise HarnessError("no Sentinel names a primary")
        primary = self.server_on(port)
        assert primary.process is not None
        primary.process.kill()
        primary.process.wait(timeout=START_TIMEOUT)
        primary.process = None
        return primary

    def wait_for_promotion(self, old_port: int, timeout: float = START_TIMEOUT) -> float:
        """Seconds until every Sentinel names another primary and that server says it is one."""

        def promoted() -> bool:
            ports = {self.primary_port(w) for w in self.watchers}
            if len(ports) != 1 or None in ports or old_port in ports:
                return False
            (port,) = ports
            assert port is not None
            client = redis.Redis(
                port=port, password=self.password, socket_timeout=2, decode_responses=True
            )
            try:
                return bool(client.info("replication")["role"] == "master")
            except redis.RedisError:
                return False
            finally:
                client.close()

        return wait_for(promoted, timeout, f"no replica promoted after the primary on {old_port}")

    def destroy(self) -> None:
        for watcher in self.watchers:
            watcher.destroy()
        for server in self.servers:
            server.destroy()
