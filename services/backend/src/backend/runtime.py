"""Everything a running backend holds: settings, database, Redis, the ai client, background jobs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

import redis.asyncio as redis
from fastapi import HTTPException, Response, status
from prometheus_client import CollectorRegistry, Counter, Gauge
from redis.exceptions import RedisError
from servicekit.ratelimit import AsyncRateLimiter
from servicekit.redisconn import async_redis_client
from servicekit.servicetoken import ServiceTokens
from sqlalchemy.exc import SQLAlchemyError

from backend.ai_client import AiClient, RetryPolicy
from backend.config import Settings
from backend.database import create_service_engine, session_factory
from backend.outbox import OutboxDrainer, replication_of
from backend.replies import ReplyPolicy, ReplyService

log = logging.getLogger(__name__)


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = create_service_engine(settings.database_url)
        self.sessions = session_factory(self.engine)
        redis_target = settings.redis_target()
        self.redis: redis.Redis | None = (
            async_redis_client(redis_target, timeout=2.0) if redis_target is not None else None
        )
        self.limiter = (
            AsyncRateLimiter(self.redis, prefix="backend", fail_open=settings.rate_limit_fail_open)
            if self.redis is not None
            else None
        )
        self.ai = AiClient(
            settings.ai_url,
            timeout_seconds=settings.ai_timeout_seconds,
            connect_timeout_seconds=settings.ai_connect_timeout_seconds,
            retry=RetryPolicy(
                attempts=settings.ai_attempts,
                backoff_seconds=settings.ai_backoff_seconds,
                backoff_max_seconds=settings.ai_backoff_max_seconds,
            ),
            tokens=ServiceTokens(*settings.ai_credentials()),
        )
        self.replies = ReplyService(
            self.sessions,
            self.ai,
            ReplyPolicy(
                context_messages=settings.ai_context_messages,
                max_attempts=settings.reply_max_attempts,
                retry_delay_seconds=settings.reply_retry_delay_seconds,
            ),
        )
        self.drainer = (
            OutboxDrainer(
                self.sessions,
                self.redis,
                settings.events_stream,
                batch_size=settings.outbox_batch_size,
                stream_maxlen=settings.events_stream_maxlen,
                redeliver_after=timedelta(seconds=settings.outbox_redeliver_after_seconds),
                replication=replication_of(settings),
            )
            if self.redis is not None
            else None
        )
        self._replies_total: Counter | None = None
        self._outbox_backlog: Gauge | None = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def inline_attempt_grace(self) -> timedelta:
        """How long the background retry leaves a new reply to the request that created it."""
        s = self.settings
        worst_case = s.ai_attempts * (s.ai_timeout_seconds + s.ai_backoff_max_seconds)
        return timedelta(seconds=worst_case + 5)

    def register_metrics(self, registry: CollectorRegistry) -> None:
        self._replies_total = Counter(
            "backend_replies_total", "Assistant reply attempts by outcome", ["status"],
            registry=registry,
        )  # fmt: skip
        self._outbox_backlog = Gauge(
            # The name predates acknowledgements (alert rules use it): events not yet done.
            "backend_outbox_unpublished",
            "Outbox events the consumer has not acknowledged yet (sent again until it does)",
            registry=registry,
        )  # fmt: skip

    def observe_reply(self, status_: str) -> None:
        if self._replies_total is not None:
            self._replies_total.labels(status=status_).inc()

    async def enforce_message_rate_limit(self, user_id: str, response: Response) -> None:
        if self.limiter is None:
            return
        result = await self.limiter.hit(
            f"messages:{user_id}",
            self.settings.message_rate_limit,
            self.settings.message_rate_window_seconds,
        )
        response.headers["X-RateLimit-Limit"] = str(result.limit)
        response.headers["X-RateLimit-Remaining"] = str(result.remaining)
        if not result.allowed:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                "too many messages; slow down",
                headers={"Retry-After": result.retry_after_header},
            )

    def start_background(self) -> None:
        s = self.settings
        if self.drainer is not None and s.outbox_drain_interval_seconds > 0:
            self._spawn("outbox drain", s.outbox_drain_interval_seconds, self._drain)
        if s.reply_retry_interval_seconds > 0:
            self._spawn("reply retry", s.reply_retry_interval_seconds, self._retry_replies)

    def _spawn(self, name: str, interval: float, job: Callable[[], Awaitable[None]]) -> None:
        self._tasks.append(asyncio.create_task(self._every(name, interval, job), name=name))

    async def _every(self, name: str, interval: float, job: Callable[[], Awaitable[None]]) -> None:
        while not self._stop.is_set():
            try:
                await job()
            except (RedisError, SQLAlchemyError, OSError) as exc:
                log.warning("%s failed; will try again", name, extra={"error": repr(exc)})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=interval)

    async def _drain(self) -> None:
        assert self.drainer is not None
        sent = await self.drainer.drain()
        if sent:
            log.info("published outbox events", extra={"count": sent})
        if self._outbox_backlog is not None:
            self._outbox_backlog.set(await self.drainer.backlog())

    async def _retry_replies(self) -> None:
        completed = await self.replies.retry_due()
        if completed:
            log.info("completed pending replies", extra={"count": completed})

    async def aclose(self) -> None:
        # Let a running drain or retry finish its round (each is short), then stop the rest.
        self._stop.set()
        _done, pending = await asyncio.wait(self._tasks, timeout=5) if self._tasks else ((), ())
        for task in pending:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.ai.aclose()
        if self.redis is not None:
            await self.redis.aclose()
        await self.engine.dispose()
