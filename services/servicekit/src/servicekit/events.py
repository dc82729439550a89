"""The event acknowledgement protocol between an outbox (producer) and a stream consumer.

Redis may lose any entry (a restart without persistence, AOF `everysec`), so the producer's
outbox keeps every event until the consumer says it holds the event durably: after the consumer
commits an event to its own database it appends `{event_id, group}` to the stream
`<events stream>:acks`. The producer reads that stream and marks its outbox rows acknowledged;
it sends unacknowledged events again after a while. Whatever Redis loses (the event, the
acknowledgement, or both), the event goes out again and the consumer, which drops duplicates by
event id, acknowledges it again: delivery is at least once, the effect exactly once.

One module so that both ends name the stream and the fields alike.
"""

from __future__ import annotations

from typing import Any

ACKS_SUFFIX = ":acks"
EVENT_ID_FIELD = "event_id"
GROUP_FIELD = "group"
# Acknowledgements are read soon after they are written; the cap only bounds Redis memory.
ACKS_MAXLEN = 100_000


def acks_stream(events_stream: str) -> str:
    """The stream that carries acknowledgements of `events_stream`'s events."""
    return events_stream + ACKS_SUFFIX


def ack_fields(event_id: str, group: str) -> dict[Any, Any]:
    """The fields of one acknowledgement entry (typed for redis-py's `xadd`)."""
    return {EVENT_ID_FIELD: event_id, GROUP_FIELD: group}


def acked_event_id(fields: dict[bytes, bytes] | dict[str, str] | None) -> str | None:
    """The event id an acknowledgement entry names; None for an entry without one."""
    if not fields:
        return None
    for key, value in fields.items():
        name = key.decode() if isinstance(key, bytes) else key
        if name == EVENT_ID_FIELD:
            text = value.decode() if isinstance(value, bytes) else value
            return text.strip() or None
    return None
