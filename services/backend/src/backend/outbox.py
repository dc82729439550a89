"""The transactional outbox: message events are rows written with the message, sent later, and
kept until the consumer acknowledges them.

A message and its `message.created` event commit in one transaction, so an event exists exactly
when its message does. The drainer copies unacknowledged rows to the Redis Stream and stamps
`published_at`; the consumer, once it has the event in its own database, acknowledges it on the
stream `<stream>:acks` (`servicekit.events`), and the drainer stamps `acknowledged_at`. A row
sent but not acknowledged within `redeliver_after` goes out again, so nothing Redis loses (an
XADD before a restart without persistence, the consumer group, an acknowledgement) loses an
event: delivery is at least once, and consumers drop duplicates by `event_id`.

`python -m backend.outbox [--loop] [--interval SECONDS]` drains from the command line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, cast

import redis.asyncio as redis
from redis.exceptions import RedisError, ResponseError
from servicekit.events import TRACEPARENT_FIELD, acked_event_id, acks_stream, current_traceparent
from servicekit.redisconn import async_redis_client
from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import Message, OutboxEvent, utcnow

if TYPE_CHECKING:
    from backend.config import Settings

log = logging.getLogger(__name__)

MESSAGE_CREATED = "message.created"
# The consumer group through which every drainer replica reads acknowledgements (NOACK: a lost
# acknowledgement costs one redelivery, nothing more).
ACKS_GROUP = "backend-outbox"
DEFAULT_REDELIVER_AFTER = timedelta(seconds=30)


def record_message_created(session: AsyncSession, message: Message) -> OutboxEvent:
    """Adds the event to the session: it commits (or rolls back) with the message. Written
    inside the request's span, it keeps that span's trace context for the consumer."""
    event = OutboxEvent(
        type=MESSAGE_CREATED,
        conversation_id=message.conversation_id,
        message_id=message.id,
        user_id=message.user_id,
        role=message.role,
        created_at=message.created_at,
        traceparent=current_traceparent(),
    )
    session.add(event)
    return event


def stream_fields(event: OutboxEvent, published_at: datetime) -> dict[str, str]:
    trace = {TRACEPARENT_FIELD: event.traceparent} if event.traceparent else {}
    return {
        "event_id": str(event.event_id),
        "type": event.type,
        "conversation_id": str(event.conversation_id),
        "message_id": str(event.message_id),
        "user_id": event.user_id,
        "role": event.role,
        "created_at": event.created_at.isoformat(),
        "published_at": published_at.isoformat(),
        **trace,
    }


class ReplicationError(RedisError):
    """Fewer replicas than required confirmed a batch: it stays unpublished and goes again."""


@dataclass(frozen=True)
class Replication:
    """How many replicas must have a sent batch (Redis `WAIT`) before it counts as published.

    An XADD that only the primary holds is lost if the primary dies before replicating it and
    Sentinel promotes a replica: waiting keeps such a batch in the outbox to be sent again.
    """

    replicas: int = 0  # 0: a single server, nothing to wait for
    timeout_ms: int = 1000

    def check(self, confirmed: int, events: int) -> None:
        if confirmed < self.replicas:
            raise ReplicationError(
                f"WAIT: {confirmed} of {self.replicas} replica(s) confirmed {events} event(s) "
                f"within {self.timeout_ms} ms; they stay in the outbox"
            )


class OutboxDrainer:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        client: redis.Redis,
        stream: str,
        *,
        batch_size: int = 100,
        stream_maxlen: int | None = None,
        redeliver_after: timedelta = DEFAULT_REDELIVER_AFTER,
        reader: str = "drainer",
        replication: Replication | None = None,
    ) -> None:
        self._sessions = sessions
        self._redis = client
        self._stream = stream
        self._batch_size = batch_size
        self._maxlen = stream_maxlen
        self._redeliver_after = redeliver_after
        self._reader = reader
        self._replication = replication or Replication()
        self._acks_group_ready = False

    async def drain_batch(self) -> int:
        """Sends up to one batch of due events (never sent, or sent and not acknowledged within
        `redeliver_after`), oldest first; returns how many.

        The rows stay locked (FOR UPDATE SKIP LOCKED on PostgreSQL) until they are stamped, so
        several replicas drain side by side without sending the same row twice.
        """
        async with self._sessions() as session, session.begin():
            now = utcnow()
            events = list(
                await session.scalars(
                    select(OutboxEvent)
                    .where(
                        OutboxEvent.acknowledged_at.is_(None),
                        or_(
                            OutboxEvent.published_at.is_(None),
                            OutboxEvent.published_at <= now - self._redeliver_after,
                        ),
                    )
                    .order_by(OutboxEvent.id)
                    .limit(self._batch_size)
                    .with_for_update(skip_locked=True)
                )
            )
            if not events:
                return 0
            async with self._redis.pipeline(transaction=False) as pipe:
                for event in events:
                    pipe.xadd(
                        self._stream,
                        stream_fields(event, now),  # type: ignore[arg-type]
                        maxlen=self._maxlen,
                        approximate=True,
                    )
                # WAIT counts the replicas that have this connection's writes: the pipeline's.
                if self._replication.replicas:
                    pipe.wait(self._replication.replicas, self._replication.timeout_ms)
                replies = await pipe.execute()
            if self._replication.replicas:
                self._replication.check(int(replies[-1]), len(events))
            await session.execute(
                update(OutboxEvent)
                .where(OutboxEvent.id.in_([e.id for e in events]))
                .values(published_at=now)
            )
        return len(events)

    async def collect_acknowledgements(self, max_entries: int = 10_000) -> int:
        """Stamps the events the consumer acknowledged since the last call; returns how many."""
        event_ids = await self._read_acknowledgements(max_entries)
        if not event_ids:
            return 0
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                update(OutboxEvent)
                .where(OutboxEvent.event_id.in_(event_ids), OutboxEvent.acknowledged_at.is_(None))
                .values(acknowledged_at=utcnow())
            )
        return int(getattr(result, "rowcount", 0) or 0)

    async def _read_acknowledgements(self, max_entries: int) -> list[uuid.UUID]:
        stream = acks_stream(self._stream)
        if not self._acks_group_ready:
            await self._ensure_acks_group(stream)
        try:
            response = await self._redis.xreadgroup(
                ACKS_GROUP, self._reader, {stream: ">"}, count=max_entries, noack=True
            )
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            # Redis lost the group (restarted empty): create it again and read from the start.
            self._acks_group_ready = False
            return []
        event_ids: list[uuid.UUID] = []
        streams = cast(list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]], response or [])
        for _stream, entries in streams:
            for _entry_id, fields in entries:
                with contextlib.suppress(ValueError, TypeError):
                    event_ids.append(uuid.UUID(acked_event_id(fields)))
        return event_ids

    async def _ensure_acks_group(self, stream: str) -> None:
        try:
            await self._redis.xgroup_create(stream, ACKS_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._acks_group_ready = True

    async def drain(self, max_batches: int = 1000) -> int:
        """Takes in acknowledgements, then sends until nothing is due (at most `max_batches`
        batches); returns how many were sent.

        The bound keeps one round finite even if rows keep arriving faster than they go out.
        """
        await self.collect_acknowledgements()
        total = 0
        for _ in range(max_batches):
            sent = await self.drain_batch()
            if not sent:
                break
            total += sent
        return total

    async def backlog(self) -> int:
        """Events the consumer has not acknowledged yet (sent or not)."""
        async with self._sessions() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(OutboxEvent)
                .where(OutboxEvent.acknowledged_at.is_(None))
            )
        return int(count or 0)

    async def run(self, interval: float, stop: asyncio.Event) -> None:
        """Drains every `interval` seconds until `stop` is set; failures are logged and retried."""
        while not stop.is_set():
            try:
                sent = await self.drain()
                if sent:
                    log.info("outbox events published", extra={"count": sent})
            except (RedisError, SQLAlchemyError, OSError) as exc:
                log.warning("outbox drain failed; will retry", extra={"error": repr(exc)})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)


def replication_of(settings: Settings) -> Replication:
    return Replication(settings.outbox_wait_replicas, settings.outbox_wait_timeout_ms)


async def _main(loop: bool, interval: float) -> int:
    from backend.config import Settings
    from backend.database import create_service_engine, session_factory

    settings = Settings()
    engine = create_service_engine(settings.database_url)
    client = async_redis_client(settings.required_redis_target(), timeout=5)
    drainer = OutboxDrainer(
        session_factory(engine),
        client,
        settings.events_stream,
        batch_size=settings.outbox_batch_size,
        stream_maxlen=settings.events_stream_maxlen,
        redeliver_after=timedelta(seconds=settings.outbox_redeliver_after_seconds),
        replication=replication_of(settings),
    )
    try:
        if loop:
            await drainer.run(interval, asyncio.Event())
        else:
            sent = await drainer.drain()
            print(f"published {sent} event(s)")
    finally:
        await client.aclose()
        await engine.dispose()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend.outbox", description=__doc__)
    parser.add_argument("--loop", action="store_true", help="keep draining until interrupted")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between drains")
    args = parser.parse_args(argv)
    if args.interval <= 0:
        parser.error("--interval must be a positive number of seconds")
    return asyncio.run(_main(args.loop, args.interval))


if __name__ == "__main__":
    sys.exit(main())
