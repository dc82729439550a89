"""Statistics kept from the chat event stream."""

from __future__ import annotations

import datetime as dt
import uuid

from django.db import models


class ProcessedEvent(models.Model):
    """One row per event ever applied; the unique event id is what makes processing idempotent."""

    event_id: models.CharField[str, str] = models.CharField(max_length=128, unique=True)
    event_type: models.CharField[str, str] = models.CharField(max_length=64)
    stream_id: models.CharField[str, str] = models.CharField(
        max_length=64, help_text="Redis Stream entry id"
    )
    processed_at: models.DateTimeField[dt.datetime | str, dt.datetime] = models.DateTimeField(
        auto_now_add=True
    )

    class Meta:
        ordering = ("-processed_at",)

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id}"


class DailyMessageCount(models.Model):
    """Messages a user wrote on one (UTC) day."""

    user_id: models.UUIDField[uuid.UUID | str, uuid.UUID] = models.UUIDField()
    day: models.DateField[dt.date | str, dt.date] = models.DateField()
    count: models.PositiveIntegerField[int, int] = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ("-day",)
        constraints = (
            models.UniqueConstraint(fields=("user_id", "day"), name="daily_count_per_user_day"),
        )

    def __str__(self) -> str:
        return f"{self.user_id} {self.day}: {self.count}"


class ConversationActivity(models.Model):
    """Message count and the time span of activity of one conversation."""

    conversation_id: models.UUIDField[uuid.UUID | str, uuid.UUID] = models.UUIDField(unique=True)
    user_id: models.UUIDField[uuid.UUID | str, uuid.UUID] = models.UUIDField(db_index=True)
    message_count: models.PositiveIntegerField[int, int] = models.PositiveIntegerField(default=0)
    first_message_at: models.DateTimeField[dt.datetime | str, dt.datetime] = models.DateTimeField()
    last_message_at: models.DateTimeField[dt.datetime | str, dt.datetime] = models.DateTimeField(
        db_index=True
    )

    class Meta:
        ordering = ("-last_message_at",)
        verbose_name_plural = "conversation activity"

    def __str__(self) -> str:
        return f"{self.conversation_id}: {self.message_count}"
