"""Traces across processes: two real service processes (uvicorn, servicekit.fastapi.install)
and an event consumer export to a real OTLP/HTTP receiver (the protobuf decoded with
opentelemetry-proto); one trace must span all three, through the HTTP call and the event hop."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from harness.fakehttp import JsonServer, Request, Response
from harness.lifetime import bound_to_parent
from harness.servers import free_port
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DEADLINE = 120.0


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str


class OtlpReceiver:
    """Collects the spans POSTed to /v1/traces."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self._lock = threading.Lock()
        self.server = JsonServer(self._answer)

    def _answer(self, request: Request) -> Response:
        if request.method != "POST" or request.path != "/v1/traces":
            return Response(404)
        export = ExportTraceServiceRequest.FromString(request.body)
        with self._lock:
            for resource_spans in export.resource_spans:
                attributes = {
                    a.key: a.value.string_value for a in resource_spans.resource.attributes
                }
                for scope in resource_spans.scope_spans:
                    self.spans.extend(
                        Span(
                            attributes["service.name"],
                            s.name,
                            s.trace_id.hex(),
                            s.span_id.hex(),
                            s.parent_span_id.hex(),
                        )
                        for s in scope.spans
                    )
        ok = ExportTraceServiceResponse().SerializeToString()
        return Response(200, ok, {"Content-Type": "application/x-protobuf"})

    def snapshot(self) -> list[Span]:
        with self._lock:
            return list(self.spans)


def environment(receiver: OtlpReceiver, **extra: str) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": f"{HERE}:{REPO / 'services' / 'servicekit' / 'src'}",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.server.url,
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # export within 0.1 s, not 5 s
        **extra,
    }


def until_answers(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        assert process.poll() is None, f"{url}: the service exited"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {DEADLINE:.0f}s")


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    with receiver.server:
        yield receiver


@pytest.fixture
def services(receiver: OtlpReceiver) -> Iterator[dict[str, str]]:
    ports = {"front": free_port(), "back": free_port()}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    processes = [
        subprocess.Popen(
            bound_to_parent(
                [sys.executable, "-m", "uvicorn", "traced_service:app", "--port", str(port)]
            ),
            env=environment(receiver, SERVICE_NAME=name, DOWNSTREAM_URL=urls["back"]),
            cwd=HERE,
        )
        for name, port in ports.items()
    ]
    try:
        for process, url in zip(processes, urls.values(), strict=True):
            until_answers(f"{url}/health", process)
        yield urls
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=60)


def test_one_trace_spans_both_services_and_the_event_consumer(
    receiver: OtlpReceiver, services: dict[str, str]
) -> None:
    event = httpx.get(f"{services['front']}/start", timeout=30).json()
    assert event["traceparent"].startswith("00-")
    consumer = subprocess.run(
        bound_to_parent(
            [sys.executable, str(HERE / "traced_service.py"), "consume", json.dumps(event)]
        ),
        env=environment(receiver, SERVICE_NAME="consumer"),
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )
    assert consumer.returncode == 0, consumer.stderr
    trace_id = event["traceparent"].split("-")[1]

    deadline = time.monotonic() + DEADLINE
    while True:
        spans = [s for s in receiver.snapshot() if s.trace_id == trace_id]
        if {s.service for s in spans} >= {"front", "back", "consumer"}:
            break
        assert time.monotonic() < deadline, f"spans of trace {trace_id}: {spans}"
        time.sleep(0.1)
    by_id = {s.span_id: s for s in spans}

    def ancestors(span: Span) -> list[str]:
        chain = []
        while span.parent_span_id in by_id:
            span = by_id[span.parent_span_id]
            chain.append(span.service)
        return chain

    (server_span,) = [s for s in spans if s.service == "back" and s.name == "GET /work"]
    assert "front" in ancestors(server_span)  # back's request continues front's trace
    (consumed,) = [s for s in spans if s.service == "consumer"]
    assert consumed.parent_span_id == event["traceparent"].split("-")[2]
    assert by_id[consumed.parent_span_id].service == "front"


def test_nothing_is_traced_without_an_endpoint() -> None:
    """No SDK tracer provider (so no span is recorded or exported) and httpx left alone."""
    program = (
        "from fastapi import FastAPI; from servicekit.fastapi import install; install(FastAPI());"
        "from opentelemetry import trace; from opentelemetry.sdk.trace import TracerProvider;"
        "from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor as H;"
        "print(isinstance(trace.get_tracer_provider(), TracerProvider),"
        " H().is_instrumented_by_opentelemetry)"
    )
    result = subprocess.run(
        bound_to_parent([sys.executable, "-c", program]),
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO / "services" / "servicekit" / "src")},
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False False"
