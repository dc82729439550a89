"""The event acknowledgement protocol between an outbox (producer) and a stream consumer.

Redis may lose any entry (a restart without persistence, AOF `everysec`), so the producer's
outbox keeps every event until the consumer says it holds the event durably: after the consumer
commits an event to its own database it appends `{event_id, group}` to the stream
`<events stream>:acks`. The producer reads that stream and marks its outbox rows acknowledged;
it sends unacknowledged events again after a while. Whatever Redis loses (the event, the
acknowledgement, or both), the event goes out again and the consumer, which drops duplicates by
event id, acknowledges it again: delivery is at least once, the effect exactly once.

An event may carry the W3C `traceparent` of the request that caused it (`current_traceparent()`
when the outbox row is written, `continued_trace(...)` around its handling), so one trace spans
the request and the event's consumer. Both are no-ops unless OTEL_EXPORTER_OTLP_ENDPOINT is set
and the `telemetry` extra is installed (servicekit.telemetry).

One module so that both ends name the stream and the fields alike.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

ACKS_SUFFIX = ":acks"
EVENT_ID_FIELD = "event_id"
GROUP_FIELD = "group"
# The W3C trace context field of an event (servicekit.telemetry.TRACEPARENT names the same).
TRACEPARENT_FIELD = "traceparent"
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


def telemetry_if_wanted() -> Any:
    """servicekit.telemetry when tracing is wanted and installed; None otherwise (OpenTelemetry
    is then not even imported)."""
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip():
        return None
    try:
        from servicekit import telemetry
    except ImportError:
        return None
    return telemetry


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span, to store with an event; None outside a trace."""
    telemetry = telemetry_if_wanted()
    if telemetry is None:
        return None
    traceparent: str | None = telemetry.trace_fields().get(telemetry.TRACEPARENT)
    return traceparent


@contextmanager
def continued_trace(name: str, fields: Mapping[str, str]) -> Iterator[None]:
    """A consumer span named `name` continuing the trace the event's `traceparent` names (a new
    trace for an event without one), through the process's tracer provider."""
    telemetry = telemetry_if_wanted()
    if telemetry is None:
        yield
        return
    from opentelemetry import trace

    tracer = trace.get_tracer("servicekit.events")
    with tracer.start_as_current_span(
        name, context=telemetry.context_of(fields), kind=trace.SpanKind.CONSUMER
    ):
        yield


@contextmanager
def untraced() -> Iterator[None]:
    """No spans within: a consumer's polls and bookkeeping (XREADGROUP, XAUTOCLAIM, ...) belong
    to no event, and a blocking poll that returns nothing would be a trace of its own every
    BLOCK interval. The events a poll returns are traced by `continued_trace`."""
    if telemetry_if_wanted() is None:
        yield
        return
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    with suppress_instrumentation():
        yield
