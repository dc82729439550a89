"""OpenTelemetry traces: exported over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set, and
nothing at all when it is not (no provider, no instrumentation, no cost, no error).

W3C trace context crosses process boundaries two ways: HTTP calls made with httpx carry a
`traceparent` header (the httpx instrumentation), and events carry one as a field
(`trace_fields()` when writing, `context_of(fields)` when consuming), so a trace follows an
event through the outbox and the stream to its consumer.
Needs the `servicekit[telemetry]` extra.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from servicekit.events import TRACEPARENT_FIELD

ENDPOINT_VARIABLE = "OTEL_EXPORTER_OTLP_ENDPOINT"
TRACEPARENT = TRACEPARENT_FIELD


def tracing_wanted(environ: Mapping[str, str] | None = None) -> bool:
    """Whether an OTLP endpoint is configured (an empty value counts as unset, as in the spec)."""
    return bool((os.environ if environ is None else environ).get(ENDPOINT_VARIABLE, "").strip())


def configure_tracing(service_name: str) -> TracerProvider | None:
    """The process's tracer provider, exporting to OTEL_EXPORTER_OTLP_ENDPOINT (+ /v1/traces),
    with outgoing httpx calls traced; None, and nothing installed, without an endpoint."""
    if not tracing_wanted():
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    return provider


def trace_fields() -> dict[str, str]:
    """The current trace context as event fields ({"traceparent": ...}); empty outside a trace."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return {key: value for key, value in carrier.items() if key == TRACEPARENT}


def context_of(fields: Mapping[str, str]) -> Context:
    """The trace context an event carried (`trace_fields()`), to parent the consumer's span."""
    return propagate.extract({TRACEPARENT: fields[TRACEPARENT]} if TRACEPARENT in fields else {})
