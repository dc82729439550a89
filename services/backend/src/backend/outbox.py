"""The transactional outbox: message events are rows written with the message, published later.

A message and its `message.created` event commit in one transaction, so an event exists exactly
when its message does. The drainer copies unpublished rows to the Redis Stream and then marks
them published. A crash before the XADD leaves the row unpublished (it is sent on the next drain);
a crash after the XADD but before the mark sends it again: delivery is at least once, and
consumers drop duplicates by `event_id`.

`python -m backend.outbox [--loop] [--interval SECONDS]` drains from the command line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from datetime import datetime

import redis.asyncio as redis
from redis.exceptions import RedisError
from sqlalchemy import func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import Message, OutboxEvent, utcnow

log = logging.getLogger(__name__)

MESSAGE_CREATED = "message.created"


def record_message_created(session: AsyncSession, message: Message) -> OutboxEvent:
    """Adds the event to the session: it commits (or rolls back) with the message."""
    event = OutboxEvent(
        type=MESSAGE_CREATED,
        conversation_id=message.conversation_id,
        message_id=message.id,
        user_id=message.user_id,
        role=message.role,
        created_at=message.created_at,
    )
    session.add(event)
    return event


def stream_fields(event: OutboxEvent, published_at: datetime) -> dict[str, str]:
    return {
        "event_id": str(event.event_id),
        "type": event.type,
        "conversation_id": str(event.conversation_id),
        "message_id": str(event.message_id),
        "user_id": event.user_id,
        "role": event.role,
        "created_at": event.created_at.isoformat(),
        "published_at": published_at.isoformat(),
    }


class OutboxDrainer:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        client: redis.Redis,
        stream: str,
        *,
        batch_size: int = 100,
        stream_maxlen: int | None = None,
    ) -> None:
        self._sessions = sessions
        self._redis = client
        self._stream = stream
        self._batch_size = batch_size
        self._maxlen = stream_maxlen

    async def drain_batch(self) -> int:
        """Publishes up to one batch of unpublished events, oldest first; returns how many.

        The rows stay locked (FOR UPDATE SKIP LOCKED on PostgreSQL) until they are marked, so
        several replicas drain side by side without sending the same row twice.
        """
        async with self._sessions() as session, session.begin():
            events = list(
                await session.scalars(
                    select(OutboxEvent)
                    .where(OutboxEvent.published_at.is_(None))
                    .order_by(OutboxEvent.id)
                    .limit(self._batch_size)
                    .with_for_update(skip_locked=True)
                )
            )
            if not events:
                return 0
            published_at = utcnow()
            async with self._redis.pipeline(transaction=False) as pipe:
                for event in events:
                    pipe.xadd(
                        self._stream,
                        stream_fields(event, published_at),  # type: ignore[arg-type]
                        maxlen=self._maxlen,
                        approximate=True,
                    )
                await pipe.execute()
            await session.execute(
                update(OutboxEvent)
                .where(OutboxEvent.id.in_([e.id for e in events]))
                .values(published_at=published_at)
            )
        return len(events)

    async def drain(self, max_batches: int = 1000) -> int:
        """Publishes until nothing is left (at most `max_batches` batches); returns the total.

        The bound keeps one round finite even if rows keep arriving faster than they go out.
        """
        total = 0
        for _ in range(max_batches):
            sent = await self.drain_batch()
            if not sent:
                break
            total += sent
        return total

    async def backlog(self) -> int:
        async with self._sessions() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(OutboxEvent)
                .where(OutboxEvent.published_at.is_(None))
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


async def _main(loop: bool, interval: float) -> int:
    from backend.config import Settings
    from backend.database import create_service_engine, session_factory

    settings = Settings()
    engine = create_service_engine(settings.database_url)
    client = redis.Redis.from_url(
        settings.required_redis_url(), socket_timeout=5, socket_connect_timeout=5
    )
    drainer = OutboxDrainer(
        session_factory(engine),
        client,
        settings.events_stream,
        batch_size=settings.outbox_batch_size,
        stream_maxlen=settings.events_stream_maxlen,
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
