"""Applying one chat event to the statistics, exactly once per event id.

Everything happens in one database transaction: the `ProcessedEvent` row is inserted first and
its unique event id decides. If the id is already there (a redelivery, or another consumer got
there first) nothing else changes; otherwise the counters are incremented in the same
transaction, so a crash either leaves both or neither.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import F
from django.db.models.functions import Greatest

from data_processor.models import ConversationActivity, DailyMessageCount, ProcessedEvent

MESSAGE_CREATED = "message.created"
REQUIRED_FIELDS = ("event_id", "type", "conversation_id", "message_id", "user_id", "role")


class InvalidEventError(ValueError):
    """The stream entry cannot be understood; it is dead-lettered instead of retried forever."""


class Outcome(enum.Enum):
    COUNTED = "counted"  # first time: statistics updated
    DUPLICATE = "duplicate"  # already applied before: nothing changed
    IGNORED = "ignored"  # an event type this service does not count (recorded as processed)


@dataclass(frozen=True)
class ChatEvent:
    event_id: str
    type: str
    conversation_id: uuid.UUID | None = None
    user_id: uuid.UUID | None = None
    role: str = ""
    created_at: dt.datetime | None = None


def parse_event(fields: dict[str, str]) -> ChatEvent:
    """A stream entry's fields as an event; `InvalidEventError` names what is wrong."""
    event_id = fields.get("event_id", "").strip()
    event_type = fields.get("type", "").strip()
    if not event_id or len(event_id) > 128:
        raise InvalidEventError("field 'event_id' is missing or longer than 128 characters")
    if event_type != MESSAGE_CREATED:
        return ChatEvent(event_id=event_id, type=event_type or "unknown")
    missing = [name for name in REQUIRED_FIELDS if not fields.get(name, "").strip()]
    if missing:
        raise InvalidEventError(f"message.created event lacks field(s): {', '.join(missing)}")
    return ChatEvent(
        event_id=event_id,
        type=event_type,
        conversation_id=_uuid(fields, "conversation_id"),
        user_id=_uuid(fields, "user_id"),
        role=fields["role"].strip(),
        created_at=_timestamp(fields.get("created_at") or fields.get("published_at") or ""),
    )


def _uuid(fields: dict[str, str], name: str) -> uuid.UUID:
    try:
        return uuid.UUID(fields[name])
    except ValueError as exc:
        raise InvalidEventError(f"field {name!r} is not a UUID: {fields[name]!r}") from exc


def _timestamp(value: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise InvalidEventError(f"field 'created_at' is not an ISO 8601 time: {value!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def apply_event(event: ChatEvent, stream_id: str) -> Outcome:
    """Record the event and update the counters, atomically and at most once per event id."""
    with transaction.atomic():
        if not _claim_event_id(event, stream_id):
            return Outcome.DUPLICATE
        if event.type != MESSAGE_CREATED:
            return Outcome.IGNORED
        _count_message(event)
    return Outcome.COUNTED


def _claim_event_id(event: ChatEvent, stream_id: str) -> bool:
    """Insert the processed-event row; False if the id exists (the unique index decides, so two
    consumers racing on one event cannot both win)."""
    try:
        with transaction.atomic():  # a savepoint: the outer transaction survives the conflict
            ProcessedEvent.objects.create(
                event_id=event.event_id, event_type=event.type, stream_id=stream_id
            )
    except IntegrityError:
        return False
    return True


def _count_message(event: ChatEvent) -> None:
    assert event.user_id is not None
    assert event.conversation_id is not None
    assert event.created_at is not None
    at = event.created_at
    _increment_or_create(
        ConversationActivity,
        {"conversation_id": event.conversation_id},
        {
            "message_count": F("message_count") + 1,
            "last_message_at": Greatest("last_message_at", at),
        },
        {
            "user_id": event.user_id,
            "message_count": 1,
            "first_message_at": at,
            "last_message_at": at,
        },
    )
    # Per-day counts are the messages the user wrote; assistant replies count as activity only.
    if event.role == "user":
        _increment_or_create(
            DailyMessageCount,
            {"user_id": event.user_id, "day": at.astimezone(dt.UTC).date()},
            {"count": F("count") + 1},
            {"count": 1},
        )


def _increment_or_create(
    model: type[ConversationActivity] | type[DailyMessageCount],
    key: dict[str, object],
    increments: dict[str, object],
    initial: dict[str, object],
) -> None:
    """UPDATE the row matching `key`, or create it; a concurrent create is retried as UPDATE."""
    if model.objects.filter(**key).update(**increments):
        return
    try:
        with transaction.atomic():
            model.objects.create(**key, **initial)
    except IntegrityError:
        model.objects.filter(**key).update(**increments)
