"""The one place a service gets a Redis (Valkey) client: a plain URL, or Sentinel.

With Sentinel (`REDIS_SENTINELS=host:26379,host:26379`, `REDIS_SENTINEL_MASTER`, and the
password in `REDIS_PASSWORD`, from a Secret) the client asks the Sentinels which server is the
primary each time it connects: when Sentinel promotes a replica, the next command after the old
primary's connection breaks goes to the new one (redis-py's `redis.sentinel`). Sentinels and
data servers share the one password. Without Sentinel, `REDIS_URL` names a single server.

Every call is bounded by the given timeout, so a dead primary costs a timeout, never a hang.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel

DEFAULT_MASTER = "chat"
SENTINEL_PORT = 26379


def parse_sentinels(text: str) -> tuple[tuple[str, int], ...]:
    """`host:port,host` (port 26379 when left out) -> ((host, port), ...); a ValueError naming
    REDIS_SENTINELS for anything else."""
    addresses: list[tuple[str, int]] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep:  # no port given
            host, port = item, str(SENTINEL_PORT)
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"REDIS_SENTINELS: {item!r} is not host:port")
        addresses.append((host, int(port)))
    if not addresses:
        raise ValueError("REDIS_SENTINELS names no sentinel (want host:port,host:port)")
    return tuple(addresses)


@dataclass(frozen=True)
class RedisTarget:
    """Where Redis is: `url` for one server, or `sentinels` + `master` (+ `password`, `db`)."""

    url: str | None = field(default=None, repr=False)  # may carry a password
    sentinels: tuple[tuple[str, int], ...] = ()
    master: str = DEFAULT_MASTER
    password: str | None = field(default=None, repr=False)
    db: int = 0

    def __post_init__(self) -> None:
        if bool(self.url) == bool(self.sentinels):
            raise ValueError("set exactly one of REDIS_URL and REDIS_SENTINELS")
        if self.sentinels and not self.master:
            raise ValueError("REDIS_SENTINEL_MASTER must name the monitored primary")

    @classmethod
    def from_settings(
        cls,
        url: str | None,
        sentinels: str | None,
        master: str = DEFAULT_MASTER,
        password: str | None = None,
        db: int = 0,
    ) -> RedisTarget | None:
        """From the environment's values; None when neither a URL nor Sentinels are set."""
        if sentinels and sentinels.strip():
            return cls(
                sentinels=parse_sentinels(sentinels), master=master, password=password, db=db
            )
        if url:
            return cls(url=url)
        return None

    def describe(self) -> str:
        """For logs and errors: never the password."""
        if self.sentinels:
            hosts = ",".join(f"{host}:{port}" for host, port in self.sentinels)
            return f"sentinel {self.master} via {hosts}"
        return "REDIS_URL"


def _target(target: RedisTarget | str) -> RedisTarget:
    return RedisTarget(url=target) if isinstance(target, str) else target


def _sentinel_kwargs(target: RedisTarget, timeout: float) -> dict[str, object]:
    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "password": target.password,
    }


def redis_client(target: RedisTarget | str, timeout: float = 1.0) -> redis.Redis:
    """A sync client whose every call is bounded by `timeout` seconds."""
    target = _target(target)
    if target.url:
        return redis.Redis.from_url(
            target.url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
    kwargs = _sentinel_kwargs(target, timeout)
    # redis-py's sync sentinel module carries no annotations.
    sentinel = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
        list(target.sentinels), sentinel_kwargs=kwargs, **kwargs
    )
    client: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
        target.master, db=target.db
    )
    return client


def async_redis_client(target: RedisTarget | str, timeout: float = 1.0) -> redis.asyncio.Redis:
    """An asyncio client whose every call is bounded by `timeout` seconds."""
    target = _target(target)
    if target.url:
        return redis.asyncio.Redis.from_url(
            target.url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
    kwargs = _sentinel_kwargs(target, timeout)
    sentinel = redis.asyncio.sentinel.Sentinel(  # type: ignore[no-untyped-call]
        list(target.sentinels), sentinel_kwargs=kwargs, **kwargs
    )
    client: redis.asyncio.Redis = sentinel.master_for(target.master, db=target.db)
    return client
