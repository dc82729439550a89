"""A FastAPI service wired as the repository's are (servicekit.fastapi.install), for the trace
test. `GET /start` calls DOWNSTREAM_URL/work with httpx and answers with the event it would
publish (the W3C context as `trace_fields()`); `python traced_service.py consume '<event>'`
consumes such an event in a process of its own, as data-processor does."""

from __future__ import annotations

import json
import os
import sys

import httpx
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from servicekit import telemetry
from servicekit.fastapi import install

app = FastAPI(title=os.environ.get("SERVICE_NAME", "traced"))
install(app)


@app.get("/start")
async def start() -> dict[str, str]:
    async with httpx.AsyncClient(timeout=10) as client:
        answer = await client.get(f"{os.environ['DOWNSTREAM_URL']}/work")
    answer.raise_for_status()
    return {"kind": "message.created", **telemetry.trace_fields()}


@app.get("/work")
async def work() -> dict[str, str]:
    return {"status": "done"}


def consume(event: dict[str, str]) -> None:
    # The provider install() configured at import (SERVICE_NAME names the consumer).
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider), "OTEL_EXPORTER_OTLP_ENDPOINT is needed"
    tracer = provider.get_tracer("consumer")
    parent = telemetry.context_of(event)
    with tracer.start_as_current_span("consume " + event["kind"], context=parent):
        pass
    provider.shutdown()  # flushes the span to the receiver


if __name__ == "__main__":
    consume(json.loads(sys.argv[2]))
