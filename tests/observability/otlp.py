"""A real OTLP/HTTP trace receiver for tests: the services' exporters POST protobuf
ExportTraceServiceRequests to /v1/traces, decoded here with opentelemetry-proto."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from harness.fakehttp import JsonServer, Request, Response
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: str = "INTERNAL"  # SERVER, CLIENT, CONSUMER, ...
    attributes: dict[str, str] = field(default_factory=dict, compare=False)


def _text(value: AnyValue) -> str:
    kind = value.WhichOneof("value")
    return "" if kind is None else str(getattr(value, kind))


def _span(service: str, span: ProtoSpan) -> Span:
    return Span(
        service=service,
        name=span.name,
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_span_id=span.parent_span_id.hex(),
        kind=ProtoSpan.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_"),
        attributes={a.key: _text(a.value) for a in span.attributes},
    )


class OtlpReceiver:
    """Collects the spans POSTed to /v1/traces; `with receiver.server:` runs it."""

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
                resource = {a.key: _text(a.value) for a in resource_spans.resource.attributes}
                for scope in resource_spans.scope_spans:
                    self.spans.extend(_span(resource["service.name"], s) for s in scope.spans)
        ok = ExportTraceServiceResponse().SerializeToString()
        return Response(200, ok, {"Content-Type": "application/x-protobuf"})

    def snapshot(self) -> list[Span]:
        with self._lock:
            return list(self.spans)
