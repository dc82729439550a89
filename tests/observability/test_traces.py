"""Traces across the repository's real services: the local stack (every Python service as its
production server and workers, migrated, behind the NGINX edge) exports to a real OTLP/HTTP
receiver (observability/otlp.py). A request carrying the SPA's `traceparent` must yield one trace
through backend, auth, ai and, over the outbox event, data-processor's consumer, with SQL and
redis client spans in it; Flask (media-storage) and Django (data-processor) server spans
continue the caller's context too. Each service is a process of its own, so no tracer provider
leaks into the test process or into other tests."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ci.localapp.stack import LocalStack, StackUrls
from e2e.api import User, sign_up
from e2e.test_chat import create_conversation
from e2e.test_media import CONTENT
from harness.lifetime import bound_to_parent
from harness.stack_plugin import _own_redis_database
from observability.otlp import OtlpReceiver, Span

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("auth", "backend", "ai", "media-storage", "data-processor")
DEADLINE = 120.0


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    with receiver.server:
        yield receiver


@pytest.fixture(scope="module")
def traced_stack(receiver: OtlpReceiver, request: pytest.FixtureRequest) -> Iterator[StackUrls]:
    tracing = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.server.url,
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # export within 0.1 s, not 5 s
    }
    stack = LocalStack(
        repo_root=REPO,
        postgres_admin_url=request.getfixturevalue("postgres_admin_url"),
        redis_url=_own_redis_database(request),
        extra_env=dict.fromkeys(SERVICES, tracing),
    )
    urls = stack.start()
    try:
        yield urls
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def user(traced_stack: StackUrls) -> Iterator[User]:
    user = sign_up(traced_stack.edge, prefix="traced")
    yield user
    user.client.close()


def traceparent() -> tuple[str, str, str]:
    """A header as the SPA sends it (services/frontend/src/api/traceparent.ts), its trace id
    and parent id."""
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{parent_id}-01", trace_id, parent_id


def spans_of(
    receiver: OtlpReceiver, trace_id: str, enough: Callable[[list[Span]], bool]
) -> list[Span]:
    """The trace's spans once `enough(spans)` holds (the exporters batch for 0.1 s)."""
    deadline = time.monotonic() + DEADLINE
    while True:
        spans = [s for s in receiver.snapshot() if s.trace_id == trace_id]
        if enough(spans):
            return spans
        assert time.monotonic() < deadline, f"trace {trace_id} incomplete: {spans}"
        time.sleep(0.2)


def server_spans(spans: list[Span], service: str) -> list[Span]:
    return [s for s in spans if s.service == service and s.kind == "SERVER"]


def above(span: Span, spans: list[Span]) -> list[Span]:
    """The spans above `span`, nearest first."""
    by_id = {s.span_id: s for s in spans}
    chain = []
    while span.parent_span_id in by_id:
        span = by_id[span.parent_span_id]
        chain.append(span)
    return chain


def ancestors(span: Span, spans: list[Span]) -> list[str]:
    """The services of the spans above `span`, nearest first."""
    return [s.service for s in above(span, spans)]


def db_system(span: Span) -> str:
    # The older and the stable database conventions name the attribute differently.
    return span.attributes.get("db.system.name") or span.attributes.get("db.system", "")


def test_a_chat_message_is_one_trace_from_the_client_to_the_event_consumer(
    receiver: OtlpReceiver, user: User
) -> None:
    conversation = create_conversation(user, "traced")
    header, trace_id, client_parent = traceparent()
    answer = user.client.post(
        f"/api/chat/conversations/{conversation['id']}/messages",
        json={"content": "Where does this trace go?"},
        headers={"traceparent": header},
    )
    assert answer.status_code == 201, answer.text

    def complete(spans: list[Span]) -> bool:
        """Each service's part is there (spans are exported as they end, in any order)."""
        consumed = {s.span_id for s in spans if s.kind == "CONSUMER"}
        served = {s.service for s in spans if s.kind == "SERVER"}
        return served >= {"backend", "auth", "ai"} and any(
            s.parent_span_id in consumed for s in spans
        )

    spans = spans_of(receiver, trace_id, complete)
    (backend,) = [s for s in server_spans(spans, "backend") if "messages" in s.name]
    assert backend.parent_span_id == client_parent  # continues the SPA's context
    (ai,) = server_spans(spans, "ai")
    assert "backend" in ancestors(ai, spans)
    # backend's first call to ai fetches a service token from auth in the same request.
    assert any("backend" in ancestors(s, spans) for s in server_spans(spans, "auth"))
    # The event hop (outbox, stream, consumer), for the user's message and the reply alike.
    consumed = [s for s in spans if s.service == "data-processor" and s.kind == "CONSUMER"]
    assert consumed
    assert all("backend" in ancestors(c, spans) for c in consumed)
    # SQL and redis client spans, in the request and under the consumer's span.
    clients = {(s.service, db_system(s)) for s in spans if s.kind == "CLIENT"}
    assert {("backend", "postgresql"), ("backend", "redis")} <= clients, clients
    consumer_ids = {c.span_id for c in consumed}
    below_consumer = {db_system(s) for s in spans if s.parent_span_id in consumer_ids}
    assert below_consumer >= {"postgresql", "redis"}, below_consumer


@pytest.mark.parametrize(
    ("service", "path"),
    [("data-processor", "/api/stats/stats/me"), ("media-storage", "/api/media/files")],
)
def test_django_and_flask_requests_continue_the_callers_trace_with_their_sql(
    receiver: OtlpReceiver, user: User, service: str, path: str
) -> None:
    header, trace_id, client_parent = traceparent()
    if service == "media-storage":
        files = {"file": ("traced.txt", CONTENT, "text/plain")}
        answer = user.client.post(path, files=files, headers={"traceparent": header})
    else:
        answer = user.client.get(path, headers={"traceparent": header})
    assert answer.is_success, answer.text

    def sql(spans: list[Span]) -> list[Span]:
        return [s for s in spans if s.service == service and db_system(s) == "postgresql"]

    def complete(spans: list[Span]) -> bool:
        return bool(server_spans(spans, service)) and bool(sql(spans))

    spans = spans_of(receiver, trace_id, complete)
    (server,) = server_spans(spans, service)
    assert server.parent_span_id == client_parent
    # The request's SQL (media-storage's catalog, data-processor's statistics), below it.
    for statement in sql(spans):
        assert statement.kind == "CLIENT"
        assert server in above(statement, spans), statement


def test_nothing_is_traced_without_an_endpoint() -> None:
    """The services' tracing hooks with OTEL_EXPORTER_OTLP_ENDPOINT unset: no SDK tracer provider
    (so no span processor), no exporter or instrumentation even imported, httpx and redis left
    alone. (redis-py itself imports the SDK's metrics module when it is installed.)"""
    program = "\n".join(
        [
            "import sys",
            "from fastapi import FastAPI",
            "from servicekit.fastapi import install",
            "from backend.database import create_service_engine",
            "install(FastAPI(), service_name='backend')",
            "create_service_engine('postgresql://nobody@127.0.0.1:9/none')",
            "loaded = sorted(m for m in sys.modules if m.startswith(",
            "    ('opentelemetry.exporter', 'opentelemetry.instrumentation')))",
            "from opentelemetry import trace",
            "from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor",
            "from opentelemetry.instrumentation.redis import RedisInstrumentor",
            "provider = type(trace.get_tracer_provider()).__name__",
            "instrumented = [i().is_instrumented_by_opentelemetry",
            "                for i in (HTTPXClientInstrumentor, RedisInstrumentor)]",
            "print(loaded, provider, instrumented)",
        ]
    )
    result = subprocess.run(
        bound_to_parent([sys.executable, "-c", program]),
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[] ProxyTracerProvider [False, False]"
