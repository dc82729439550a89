"""Process-wide metrics of the web process: HTTP requests plus the consumer group's lag, which
is read from Redis at scrape time (so it is right whichever process serves the scrape)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import redis
from django.conf import settings
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from servicekit.metrics import HttpMetrics
from servicekit.redisconn import RedisTarget, redis_client

from data_processor.lag import GroupLag, read_group_lag

logger = logging.getLogger(__name__)
REDIS_TIMEOUT_SECONDS = 2.0

_clients: dict[RedisTarget, redis.Redis] = {}


def shared_redis() -> redis.Redis:
    """One client (connection pool) per Redis target, every call bounded by a timeout."""
    target: RedisTarget = settings.REDIS
    client = _clients.get(target)
    if client is None:
        client = _clients[target] = redis_client(target, timeout=REDIS_TIMEOUT_SECONDS)
    return client


def current_lag() -> GroupLag:
    return read_group_lag(shared_redis(), settings.STATS_STREAM, settings.STATS_GROUP)


class ConsumerLagCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            state = current_lag()
        except redis.RedisError as exc:
            logger.warning("consumer lag unavailable for metrics", extra={"error": repr(exc)})
            return
        yield GaugeMetricFamily(
            "data_processor_consumer_lag",
            "Stream entries not yet delivered to the consumer group",
            value=state.lag,
        )
        yield GaugeMetricFamily(
            "data_processor_consumer_pending",
            "Entries delivered to a consumer but not yet acknowledged",
            value=state.pending,
        )
        yield GaugeMetricFamily(
            "data_processor_stream_length",
            "Entries in the events stream",
            value=state.stream_length,
        )


http_metrics = HttpMetrics()
http_metrics.registry.register(ConsumerLagCollector())
