"""`python -m data_processor.manage consume_events`: the stream consumer (a K8s worker)."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from prometheus_client import start_http_server
from servicekit.events import telemetry_if_wanted
from servicekit.redisconn import redis_client

from data_processor.config import default_consumer_name
from data_processor.consumer import ConsumerMetrics, ConsumerOptions, EventConsumer


class Command(BaseCommand):
    help = "Consume chat events from the Redis Stream into the statistics tables."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--consumer", default=None, help="consumer name (default: host-pid)")
        parser.add_argument("--batch-size", type=int, default=100)
        parser.add_argument("--block-ms", type=int, default=1000, help="XREADGROUP BLOCK")
        parser.add_argument(
            "--claim-idle-ms",
            type=int,
            default=None,
            help="claim other consumers' entries idle this long (default: STATS_CLAIM_IDLE_MS)",
        )
        parser.add_argument(
            "--metrics-port", type=int, default=0, help="serve /metrics on this port (0: off)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        for name in ("batch_size", "block_ms"):
            if options[name] <= 0:
                self.stderr.write(f"--{name.replace('_', '-')} must be positive")
                raise SystemExit(2)
        consumer_options = ConsumerOptions(
            stream=settings.STATS_STREAM,
            group=settings.STATS_GROUP,
            consumer=options["consumer"] or default_consumer_name(),
            batch_size=options["batch_size"],
            block_ms=options["block_ms"],
            claim_idle_ms=options["claim_idle_ms"] or settings.STATS_CLAIM_IDLE_MS,
        )
        metrics = ConsumerMetrics()
        if options["metrics_port"]:
            start_http_server(options["metrics_port"], registry=metrics.registry)
        stop = threading.Event()

        def request_stop(signum: int, _frame: FrameType | None) -> None:
            # Finish the entry at hand (its transaction and XACK), then leave the loop.
            stop.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        # The socket timeout must outlast the blocking read.
        client = redis_client(settings.REDIS, timeout=consumer_options.block_ms / 1000 + 5)
        # Spans of consumed events, their SQL and redis calls (OTEL_EXPORTER_OTLP_ENDPOINT set).
        telemetry = telemetry_if_wanted()
        provider = telemetry.trace_django("data-processor") if telemetry else None
        try:
            EventConsumer(client, consumer_options, metrics=metrics, stop=stop).run()
        finally:
            client.close()
            if provider is not None:
                provider.shutdown()  # sends the spans still batched
