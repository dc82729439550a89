"""Applying events to the statistics: parsing, idempotence, concurrency (real PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import threading
import uuid

import pytest
from data_processor.events import (
    ChatEvent,
    InvalidEventError,
    Outcome,
    apply_event,
    parse_event,
)
from data_processor.models import ConversationActivity, DailyMessageCount, ProcessedEvent
from django.db import connection


def message_fields(
    user: uuid.UUID, conversation: uuid.UUID, *, role: str = "user", at: str | None = None
) -> dict[str, str]:
    created = at or "2026-11-25T10:00:00+00:00"
    return {
        "event_id": str(uuid.uuid4()),
        "type": "message.created",
        "conversation_id": str(conversation),
        "message_id": str(uuid.uuid4()),
        "user_id": str(user),
        "role": role,
        "created_at": created,
        "published_at": created,
    }


def test_parse_message_created() -> None:
    user, conversation = uuid.uuid4(), uuid.uuid4()
    event = parse_event(message_fields(user, conversation, at="2026-11-25T23:30:00-02:00"))
    assert event.user_id == user
    assert event.conversation_id == conversation
    assert event.created_at == dt.datetime(2026, 11, 26, 1, 30, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"event_id": ""}, "event_id"),
        ({"user_id": "not-a-uuid"}, "user_id"),
        ({"conversation_id": ""}, "conversation_id"),
        ({"role": ""}, "role"),
        ({"created_at": "yesterday", "published_at": ""}, "created_at"),
    ],
)
def test_parse_rejects_malformed_events(change: dict[str, str], complaint: str) -> None:
    fields = {**message_fields(uuid.uuid4(), uuid.uuid4()), **change}
    with pytest.raises(InvalidEventError, match=complaint):
        parse_event(fields)


def test_other_event_types_need_only_an_id() -> None:
    assert parse_event({"event_id": "e1", "type": "conversation.created"}) == ChatEvent(
        event_id="e1", type="conversation.created"
    )


def test_event_counts_once_however_often_it_is_applied(stats_db: str) -> None:
    user, conversation = uuid.uuid4(), uuid.uuid4()
    event = parse_event(message_fields(user, conversation))
    assert apply_event(event, "1-0") is Outcome.COUNTED
    assert apply_event(event, "2-0") is Outcome.DUPLICATE
    assert apply_event(event, "1-0") is Outcome.DUPLICATE
    row = DailyMessageCount.objects.get(user_id=user)
    assert (row.day, row.count) == (dt.date(2026, 11, 25), 1)
    assert ConversationActivity.objects.get(conversation_id=conversation).message_count == 1
    assert ProcessedEvent.objects.count() == 1


def test_counts_per_user_per_day_and_conversation(stats_db: str) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    chat_a, chat_b = uuid.uuid4(), uuid.uuid4()
    fields = [
        message_fields(alice, chat_a, at="2026-11-24T08:00:00+00:00"),
        message_fields(alice, chat_a, role="assistant", at="2026-11-24T08:00:01+00:00"),
        message_fields(alice, chat_a, at="2026-11-25T09:00:00+00:00"),
        message_fields(alice, chat_b, at="2026-11-25T09:30:00+00:00"),
        message_fields(bob, uuid.uuid4(), at="2026-11-25T10:00:00+00:00"),
    ]
    for index, item in enumerate(fields):
        assert apply_event(parse_event(item), f"{index}-0") is Outcome.COUNTED
    alice_days = dict(DailyMessageCount.objects.filter(user_id=alice).values_list("day", "count"))
    # The assistant's reply is conversation activity, not a message the user wrote.
    assert alice_days == {dt.date(2026, 11, 24): 1, dt.date(2026, 11, 25): 2}
    activity = ConversationActivity.objects.get(conversation_id=chat_a)
    assert activity.message_count == 3
    assert activity.first_message_at == dt.datetime(2026, 11, 24, 8, 0, tzinfo=dt.UTC)
    assert activity.last_message_at == dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.UTC)
    assert DailyMessageCount.objects.get(user_id=bob).count == 1


def test_out_of_order_events_keep_the_latest_activity_time(stats_db: str) -> None:
    user, chat = uuid.uuid4(), uuid.uuid4()
    apply_event(parse_event(message_fields(user, chat, at="2026-11-25T12:00:00+00:00")), "1-0")
    apply_event(parse_event(message_fields(user, chat, at="2026-11-25T11:00:00+00:00")), "2-0")
    activity = ConversationActivity.objects.get(conversation_id=chat)
    assert activity.last_message_at == dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)


def test_unknown_event_types_are_recorded_but_not_counted(stats_db: str) -> None:
    event = parse_event({"event_id": "e-1", "type": "conversation.deleted"})
    assert apply_event(event, "1-0") is Outcome.IGNORED
    assert apply_event(event, "1-0") is Outcome.DUPLICATE
    assert ProcessedEvent.objects.get().event_type == "conversation.deleted"
    assert DailyMessageCount.objects.count() == 0


def test_racing_consumers_count_an_event_once(stats_db: str) -> None:
    """Many threads (own PostgreSQL connections) apply the same events at the same time."""
    user, chat = uuid.uuid4(), uuid.uuid4()
    events = [parse_event(message_fields(user, chat)) for _ in range(20)]
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    barrier = threading.Barrier(4)

    def worker() -> None:
        try:
            barrier.wait()
            for event in events:
                outcome = apply_event(event, "1-0")
                with lock:
                    outcomes.append(outcome)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert outcomes.count(Outcome.COUNTED) == 20
    assert outcomes.count(Outcome.DUPLICATE) == 60
    assert DailyMessageCount.objects.get(user_id=user).count == 20
    assert ConversationActivity.objects.get(conversation_id=chat).message_count == 20
