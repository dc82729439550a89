"""Assistant replies: ask the ai service, store the answer or what went wrong.

A reply is first stored as a `pending` assistant message in the transaction that stores the
user's message, so it can never be lost. Each attempt asks the ai service (outside any database
transaction) and then records the outcome: `completed` with its content and its
`message.created` event, or still `pending` with the time of the next background try, or `failed`
once the ai service refused the request or the attempts are used up. A failed reply can still be
retried by hand.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.ai_client import AiClient, AiError, AiReply
from backend.models import Message, utcnow
from backend.outbox import record_message_created

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplyPolicy:
    context_messages: int = 20
    max_attempts: int = 5
    retry_delay_seconds: float = 5.0

    def next_try_delay(self, attempts: int) -> timedelta:
        """Backoff for the background retry: delay, 2x, 4x, ... capped at one hour."""
        return timedelta(seconds=min(3600.0, self.retry_delay_seconds * 2 ** max(0, attempts - 1)))


class ReplyService:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], ai: AiClient, policy: ReplyPolicy
    ) -> None:
        self._sessions = sessions
        self._ai = ai
        self._policy = policy

    async def attempt(self, assistant: Message) -> Message:
        """One attempt at `assistant`'s reply; returns the message as stored afterwards.

        Never raises for ai or database trouble: the message then stays pending and the
        background retry picks it up.
        """
        if assistant.status == "completed":
            return assistant
        try:
            context = await self._context(assistant)
        except SQLAlchemyError as exc:
            log.warning("could not load the conversation for a reply", extra={"error": repr(exc)})
            return assistant
        try:
            reply = await self._ai.reply(context)
        except AiError as exc:
            log.warning(
                "ai reply failed",
                extra={
                    "message_id": str(assistant.id),
                    "error": str(exc),
                    "transient": exc.transient,
                },
            )
            return await self._store_failure(assistant, exc)
        return await self._store_reply(assistant, reply)

    async def _context(self, assistant: Message) -> list[dict[str, str]]:
        """The last completed messages before the reply, oldest first."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(Message)
                .where(
                    Message.conversation_id == assistant.conversation_id,
                    Message.seq < assistant.seq,
                    Message.status == "completed",
                )
                .order_by(Message.seq.desc())
                .limit(self._policy.context_messages)
            )
            return [{"role": m.role, "content": m.content} for m in reversed(list(rows))]

    async def _store_reply(self, assistant: Message, reply: AiReply) -> Message:
        now = utcnow()
        try:
            async with self._sessions() as session, session.begin():
                # Only the first attempt to finish completes the message and writes its event;
                # a concurrent retry of the same message updates nothing.
                result = await session.execute(
                    update(Message)
                    .where(Message.id == assistant.id, Message.status != "completed")
                    .values(
                        status="completed",
                        content=reply.content,
                        model=reply.model,
                        attempts=Message.attempts + 1,
                        last_error=None,
                        next_attempt_at=None,
                        updated_at=now,
                    )
                )
                stored = await session.scalar(select(Message).where(Message.id == assistant.id))
                assert stored is not None
                if result.rowcount == 1:  # type: ignore[attr-defined]
                    record_message_created(session, stored)
            return stored
        except SQLAlchemyError as exc:
            log.warning("could not store an ai reply", extra={"error": repr(exc)})
            return assistant

    async def _store_failure(self, assistant: Message, error: AiError) -> Message:
        now = utcnow()
        attempts = assistant.attempts + 1
        give_up = not error.transient or attempts >= self._policy.max_attempts
        try:
            async with self._sessions() as session, session.begin():
                await session.execute(
                    update(Message)
                    .where(Message.id == assistant.id, Message.status != "completed")
                    .values(
                        status="failed" if give_up else "pending",
                        attempts=Message.attempts + 1,
                        last_error=str(error)[:500],
                        next_attempt_at=None
                        if give_up
                        else now + self._policy.next_try_delay(attempts),
                        updated_at=now,
                    )
                )
                stored = await session.scalar(select(Message).where(Message.id == assistant.id))
                assert stored is not None
            return stored
        except SQLAlchemyError as exc:
            log.warning("could not record an ai failure", extra={"error": repr(exc)})
            return assistant

    async def claim_due(self, limit: int, lease: timedelta) -> list[Message]:
        """Pending replies whose next try is due, leased so other replicas skip them."""
        now = utcnow()
        async with self._sessions() as session, session.begin():
            due = list(
                await session.scalars(
                    select(Message)
                    .where(
                        Message.role == "assistant",
                        Message.status == "pending",
                        Message.next_attempt_at <= now,
                    )
                    .order_by(Message.next_attempt_at)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            )
            for message in due:
                message.next_attempt_at = now + lease
        return due

    async def retry_due(self, limit: int = 20, lease: timedelta = timedelta(minutes=2)) -> int:
        """One background pass: attempts every due pending reply; returns how many completed."""
        completed = 0
        for message in await self.claim_due(limit, lease):
            if (await self.attempt(message)).status == "completed":
                completed += 1
        return completed

    async def get(self, message_id: uuid.UUID) -> Message | None:
        async with self._sessions() as session:
            return await session.scalar(select(Message).where(Message.id == message_id))
