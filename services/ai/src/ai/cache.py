"""Replies cached in Redis, keyed by a hash of caller, provider, model and messages.

The cache is an optimisation: when Redis fails, the request is answered by the provider and the
failure is logged, never turned into an error for the caller.
"""

from __future__ import annotations

import hashlib
import json
import logging

import redis.asyncio as redis
from redis.exceptions import RedisError

from ai.providers.base import ChatMessage

log = logging.getLogger(__name__)

KEY_PREFIX = "ai:reply:"


def cache_key(caller: str, provider: str, model: str, messages: list[ChatMessage]) -> str:
    """A stable key: canonical JSON of everything that determines the reply and of whose cache
    it is (one caller's hits reveal nothing of another's messages), hashed."""
    canonical = json.dumps(
        {
            "caller": caller,
            "provider": provider,
            "model": model,
            "messages": [m.model_dump() for m in messages],
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return KEY_PREFIX + hashlib.sha256(canonical.encode()).hexdigest()


class ReplyCache:
    def __init__(self, client: redis.Redis, ttl_seconds: int) -> None:
        self._client = client
        self._ttl = ttl_seconds

    @property
    def enabled(self) -> bool:
        return self._ttl > 0

    async def get(self, key: str) -> str | None:
        if not self.enabled:
            return None
        try:
            value = await self._client.get(key)
        except RedisError as exc:
            log.warning("reply cache read failed", extra={"error": repr(exc)})
            return None
        return value.decode() if isinstance(value, bytes) else value

    async def put(self, key: str, content: str) -> None:
        if not self.enabled:
            return
        try:
            await self._client.set(key, content, ex=self._ttl)
        except RedisError as exc:
            log.warning("reply cache write failed", extra={"error": repr(exc)})
