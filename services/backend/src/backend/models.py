"""Tables: conversations, their messages, the outbox of message events and idempotency keys.

Rows have a public UUID `id` and an integer `seq` primary key: `seq` gives a total order for
cursor pagination (UUIDs are random; timestamps tie), and stays internal.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    Uuid,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ROLES = ("user", "assistant")
STATUSES = ("completed", "pending", "failed")
TITLE_MAX = 200
USER_ID_MAX = 64
IDEMPOTENCY_KEY_MAX = 255

# BIGINT on PostgreSQL; SQLite only autoincrements a column declared exactly INTEGER.
SeqType = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware UTC datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class Conversation(Base):
    __tablename__ = "conversations"

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True, default=uuid.uuid4)
    user_id: Mapped[str] = mapped_column(String(USER_ID_MAX))
    title: Mapped[str] = mapped_column(String(TITLE_MAX))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (Index("ix_conversations_user_id_seq", "user_id", "seq"),)


class Message(Base):
    __tablename__ = "messages"

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True, default=uuid.uuid4)
    conversation_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("conversations.id", ondelete="CASCADE")
    )
    user_id: Mapped[str] = mapped_column(String(USER_ID_MAX))
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16))
    # For an assistant message: the user message it answers.
    reply_to: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("messages.id"))
    model: Mapped[str | None] = mapped_column(String(200))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (
        CheckConstraint("role IN ('user', 'assistant')", name="role"),
        CheckConstraint("status IN ('completed', 'pending', 'failed')", name="status"),
        Index("ix_messages_conversation_id_seq", "conversation_id", "seq"),
        Index("ix_messages_status_next_attempt_at", "status", "next_attempt_at"),
    )


class OutboxEvent(Base):
    """An event written in the same transaction as the change it describes, published later."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True, default=uuid.uuid4)
    type: Mapped[str] = mapped_column(String(64))
    conversation_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    message_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    user_id: Mapped[str] = mapped_column(String(USER_ID_MAX))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # When it was last sent to the stream (it is sent again until acknowledged).
    published_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # When the consumer said it holds the event durably; only then is the event done.
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # The W3C traceparent of the request that wrote the event (when traced), so the consumer
    # continues that trace; 55 characters in trace-context version 00.
    traceparent: Mapped[str | None] = mapped_column(String(55))

    __table_args__ = (
        Index(
            "ix_outbox_unacknowledged",
            "id",
            postgresql_where=acknowledged_at.is_(None),
            sqlite_where=acknowledged_at.is_(None),
        ),
    )


class IdempotencyKey(Base):
    """A client's `Idempotency-Key` (IETF draft-ietf-httpapi-idempotency-key-header): the
    request it came with (a fingerprint) and the resource that request created, so a repeat
    gets that resource instead of a second one."""

    __tablename__ = "idempotency_keys"

    user_id: Mapped[str] = mapped_column(String(USER_ID_MAX), primary_key=True)
    key: Mapped[str] = mapped_column(String(IDEMPOTENCY_KEY_MAX), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
