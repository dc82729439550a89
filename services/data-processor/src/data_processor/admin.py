"""Django admin (staff login required, as always with the admin site): read-only statistics."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from data_processor.models import ConversationActivity, DailyMessageCount, ProcessedEvent


class ReadOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """The consumer owns these rows; staff may look, not edit."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ProcessedEvent)
class ProcessedEventAdmin(ReadOnlyAdmin):
    list_display = ("event_id", "event_type", "stream_id", "processed_at")
    search_fields = ("event_id", "stream_id")
    list_filter = ("event_type",)


@admin.register(DailyMessageCount)
class DailyMessageCountAdmin(ReadOnlyAdmin):
    list_display = ("user_id", "day", "count")
    search_fields = ("user_id",)
    date_hierarchy = "day"


@admin.register(ConversationActivity)
class ConversationActivityAdmin(ReadOnlyAdmin):
    list_display = ("conversation_id", "user_id", "message_count", "last_message_at")
    search_fields = ("conversation_id", "user_id")
