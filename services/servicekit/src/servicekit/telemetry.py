"""OpenTelemetry traces: exported over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set, and
nothing at all when it is not (no provider, no instrumentation, no cost, no error).

What is traced: server spans (FastAPI through servicekit.fastapi.install, Flask through
`trace_wsgi`, Django through `trace_django`), client spans of httpx and redis calls (for the whole
process, from `configure_tracing`), SQL statements of SQLAlchemy engines (`trace_engine`) and of
Django's psycopg connections (`trace_django`).

W3C trace context crosses process boundaries two ways: HTTP calls made with httpx carry a
`traceparent` header (the httpx instrumentation), and events carry one as a field
(`trace_fields()` when writing, `context_of(fields)` when consuming), so a trace follows an
event through the outbox and the stream to its consumer.
Needs the `servicekit[telemetry]` extra.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from opentelemetry import metrics, propagate, trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
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
    with outgoing httpx and redis calls traced; None, and nothing installed, without an endpoint."""
    if not tracing_wanted():
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    RedisInstrumentor().instrument(tracer_provider=provider)
    return provider


def trace_wsgi(app: Any, service_name: str) -> TracerProvider | None:
    """Server spans for every request of a WSGI (Flask) `app`, continuing the caller's trace
    context. The generic WSGI middleware: the index has the Flask instrumentation only on an
    older release line than the other instrumentations."""
    from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware

    provider = configure_tracing(service_name)
    if provider is not None:
        app.wsgi_app = OpenTelemetryMiddleware(app.wsgi_app, tracer_provider=provider)
    return provider


def trace_django(service_name: str) -> TracerProvider | None:
    """Server spans for Django's requests and client spans for its psycopg statements. Call it
    before the WSGI handler is built (it adds a middleware) and before the first query."""
    import psycopg
    from opentelemetry.instrumentation.dbapi import trace_integration
    from opentelemetry.instrumentation.django import DjangoInstrumentor

    provider = configure_tracing(service_name)
    if provider is not None:
        DjangoInstrumentor().instrument(tracer_provider=provider)
        # Generic DB-API integration: the psycopg instrumentation is on the older release line.
        # Its first parameter is the module that has `connect` (annotated as a callable).
        trace_integration(psycopg, "connect", "postgresql", tracer_provider=provider)  # type: ignore[arg-type]
    return provider


def trace_engine(engine: Any) -> None:
    """Client spans for the SQL statements of a SQLAlchemy (or async) `engine`, through the
    process's tracer provider (also one configured after this call)."""
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer

    # Per engine: the instrumentor's own entry point instruments once per process only.
    tracer = trace.get_tracer("servicekit.telemetry.sqlalchemy")
    usage = metrics.get_meter(__name__).create_up_down_counter("db.client.connections.usage")
    EngineTracer(tracer, getattr(engine, "sync_engine", engine), usage)  # type: ignore[no-untyped-call]


def trace_fields() -> dict[str, str]:
    """The current trace context as event fields ({"traceparent": ...}); empty outside a trace."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return {key: value for key, value in carrier.items() if key == TRACEPARENT}


def context_of(fields: Mapping[str, str]) -> Context:
    """The trace context an event carried (`trace_fields()`), to parent the consumer's span."""
    return propagate.extract({TRACEPARENT: fields[TRACEPARENT]} if TRACEPARENT in fields else {})
