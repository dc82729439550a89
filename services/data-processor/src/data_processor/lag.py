"""How far the consumer group is behind the stream (for /ready and /metrics)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import redis


@dataclass(frozen=True)
class GroupLag:
    stream_length: int
    lag: int  # entries not yet delivered to any consumer of the group
    pending: int  # delivered but not yet acknowledged
    group_exists: bool


def read_group_lag(client: redis.Redis, stream: str, group: str) -> GroupLag:
    """XINFO GROUPS' `lag` (Redis 7+); when Redis cannot tell (entries deleted in between, or an
    older server), count the entries after the group's last-delivered id instead."""
    length = int(client.xlen(stream))
    if length == 0 and not client.exists(stream):
        return GroupLag(0, 0, 0, group_exists=False)
    groups: list[dict[Any, Any]] = client.xinfo_groups(stream)
    info = next((g for g in groups if _text(g.get("name")) == group), None)
    if info is None:
        return GroupLag(length, length, 0, group_exists=False)
    pending = int(info.get("pending") or 0)
    lag = info.get("lag")
    if lag is None:
        last = _text(info.get("last-delivered-id")) or "0-0"
        lag = len(cast(list[Any], client.xrange(stream, min=f"({last}", max="+")))
    return GroupLag(length, int(lag), pending, group_exists=True)


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode()
    return "" if value is None else str(value)
