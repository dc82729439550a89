"""The Redis Stream consumer: at-least-once delivery turned into exactly-once counting.

Each loop: (1) this consumer's own pending entries when a previous attempt failed or at start,
(2) entries that another consumer left pending longer than the claim timeout (XAUTOCLAIM: that
consumer died), (3) new entries (XREADGROUP >). Every entry is applied in a database transaction
and XACKed only after the commit. A crash between commit and XACK means a redelivery, which the
processed-event row turns into a no-op.

With the XACK goes an acknowledgement to the producer (`servicekit.events`): the event is in this
service's database, so the producer's outbox may let it go. Until then the outbox sends it again,
so an event Redis lost (a restart without its data) still arrives.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, cast

import redis
from django import db
from prometheus_client import CollectorRegistry, Counter
from servicekit.events import ACKS_MAXLEN, ack_fields, acks_stream, continued_trace, untraced

from data_processor.events import InvalidEventError, Outcome, apply_event, parse_event

logger = logging.getLogger(__name__)

Entry = tuple[bytes, dict[bytes, bytes] | None]
DEAD_LETTER_SUFFIX = ":dead"
MAX_BACKOFF_SECONDS = 5.0
# Consumers are named per process, so every restart leaves a name behind in the group.
PRUNE_INTERVAL_SECONDS = 60.0


@dataclass
class ConsumerOptions:
    stream: str
    group: str
    consumer: str
    batch_size: int = 100
    block_ms: int = 1000
    claim_idle_ms: int = 30_000
    # Consumers that held nothing and did nothing for this long are removed from the group.
    prune_idle_ms: int = 3_600_000
    # An entry whose handling raised this often is dead-lettered (a poison pill must not stall
    # the stream). Outages of PostgreSQL or Redis do not count: they are no fault of the entry.
    max_attempts: int = 5


@dataclass
class ConsumerMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.events = Counter(
            "data_processor_events_total",
            "Stream entries handled, by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.claimed = Counter(
            "data_processor_claimed_entries_total",
            "Pending entries claimed from other (dead) consumers",
            registry=self.registry,
        )
        self.failures = Counter(
            "data_processor_failures_total",
            "Loop iterations that failed on PostgreSQL or Redis (retried)",
            registry=self.registry,
        )


class EventConsumer:
    def __init__(
        self,
        client: redis.Redis,
        options: ConsumerOptions,
        *,
        metrics: ConsumerMetrics | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.redis = client
        self.options = options
        self.metrics = metrics or ConsumerMetrics()
        self.stop = stop or threading.Event()
        self._own_pending = True  # at start, finish what this consumer name left unacked
        self._claim_cursor = "0-0"
        self._failures = 0
        self._pruned_at = 0.0
        self._attempts: dict[str, int] = {}

    def ensure_group(self) -> None:
        """Create the consumer group reading the stream from its beginning (no event skipped)."""
        try:
            with untraced():
                self.redis.xgroup_create(
                    self.options.stream, self.options.group, id="0", mkstream=True
                )
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def run(self) -> None:
        """Loop until `stop` is set; dependency outages are logged and retried with backoff."""
        logger.info(
            "consumer started",
            extra={
                "stream": self.options.stream,
                "group": self.options.group,
                "consumer": self.options.consumer,
            },
        )
        group_ready = False
        while not self.stop.is_set():
            try:
                if not group_ready:
                    self.ensure_group()
                    group_ready = True
                self.step()
                self._failures = 0
            except (redis.RedisError, db.Error) as exc:
                if isinstance(exc, redis.ResponseError) and "NOGROUP" in str(exc):
                    # The stream or group vanished (e.g. Redis restarted without its data).
                    group_ready = False
                self._failed(exc)
            except Exception as exc:  # a bug or a poisonous entry: retried, then dead-lettered
                logger.exception("unexpected error while handling events")
                self._failed(exc)
        db.connections.close_all()
        logger.info("consumer stopped", extra={"consumer": self.options.consumer})

    def step(self) -> int:
        """One round: own pending, claimed, then new entries. Returns how many were handled.

        The polls are not traced (an idle one would be a trace of its own every BLOCK interval);
        each entry they return is, continuing its producer's trace (`_handle`)."""
        handled = 0
        if self._own_pending:
            own = self._read("0")
            handled += self._handle_all(own)
            self._own_pending = len(own) >= self.options.batch_size
        claimed = self._claim()
        handled += self._handle_all(claimed)
        self._prune_idle_consumers()
        if self.stop.is_set():
            return handled
        return handled + self._handle_all(self._read(">", block=not claimed))

    def _read(self, start: str, *, block: bool = False) -> list[Entry]:
        with untraced():
            response = self.redis.xreadgroup(
                self.options.group,
                self.options.consumer,
                {self.options.stream: start},
                count=self.options.batch_size,
                block=self.options.block_ms if block else None,
            )
        if not response:
            return []
        streams = cast(list[tuple[bytes, list[Entry]]], response)
        return list(streams[0][1])

    def _claim(self) -> list[Entry]:
        """Take over entries another consumer has held longer than the claim timeout."""
        with untraced():
            cursor, entries, *_deleted = self.redis.xautoclaim(
                self.options.stream,
                self.options.group,
                self.options.consumer,
                min_idle_time=self.options.claim_idle_ms,
                start_id=self._claim_cursor,
                count=self.options.batch_size,
            )
        self._claim_cursor = _text(cursor)
        if entries:
            self.metrics.claimed.inc(len(entries))
            logger.info("claimed pending entries", extra={"count": len(entries)})
        return list(entries)

    def _prune_idle_consumers(self) -> None:
        """Forget long-idle consumers that hold nothing (safe: they have no pending entries)."""
        now = time.monotonic()
        if now - self._pruned_at < PRUNE_INTERVAL_SECONDS:
            return
        self._pruned_at = now
        with untraced():
            consumers: list[dict[Any, Any]] = self.redis.xinfo_consumers(
                self.options.stream, self.options.group
            )
            for info in consumers:
                name = _text(info["name"])
                idle = int(info["idle"])
                if (
                    name != self.options.consumer
                    and int(info["pending"]) == 0
                    and idle > self.options.prune_idle_ms
                ):
                    self.redis.xgroup_delconsumer(self.options.stream, self.options.group, name)
                    logger.info("removed idle consumer", extra={"consumer": name})

    def _handle_all(self, entries: list[Entry]) -> int:
        for raw_id, fields in entries:
            entry_id = _text(raw_id)
            if fields is not None and self._attempts.get(entry_id, 0) >= self.options.max_attempts:
                reason = f"handling failed {self._attempts.pop(entry_id)} times"
                self._dead_letter(entry_id, _decoded(fields), reason)
                continue
            try:
                self._handle(entry_id, fields)
            except BaseException as exc:
                # This and the rest stay pending for this consumer; retry them first next time.
                self._own_pending = True
                if not isinstance(exc, redis.RedisError | db.Error):
                    self._attempts[entry_id] = self._attempts.get(entry_id, 0) + 1
                raise
            self._attempts.pop(entry_id, None)
        return len(entries)

    def _handle(self, entry_id: str, raw: dict[bytes, bytes] | None) -> None:
        if raw is None:  # the entry was trimmed from the stream while pending
            self._ack(entry_id)
            return
        fields = _decoded(raw)
        # The trace of the request that wrote the event (its outbox row's traceparent) goes on.
        with continued_trace("consume " + fields.get("type", "event"), fields):
            try:
                outcome = apply_event(parse_event(fields), entry_id)
            except InvalidEventError as exc:
                self._dead_letter(entry_id, fields, str(exc))
                return
            self._ack(entry_id, fields["event_id"].strip())  # only after apply_event committed
        self.metrics.events.labels(outcome.value).inc()
        if outcome is Outcome.DUPLICATE:
            logger.info("duplicate event skipped", extra={"event_id": fields["event_id"]})

    def _ack(self, entry_id: str, event_id: str | None = None) -> None:
        """XACK the entry and, when it names an event, acknowledge that event to its producer."""
        pipe = self.redis.pipeline(transaction=True)
        self._acknowledge_event(pipe, event_id)
        pipe.xack(self.options.stream, self.options.group, entry_id)
        pipe.execute()

    def _acknowledge_event(self, pipe: redis.client.Pipeline, event_id: str | None) -> None:
        if event_id:
            pipe.xadd(
                acks_stream(self.options.stream),
                ack_fields(event_id, self.options.group),
                maxlen=ACKS_MAXLEN,
                approximate=True,
            )

    def _dead_letter(self, entry_id: str, fields: dict[str, str], reason: str) -> None:
        """Park an entry that can never be processed, and acknowledge it, in one transaction."""
        logger.error("invalid event dead-lettered", extra={"entry_id": entry_id, "reason": reason})
        pipe = self.redis.pipeline(transaction=True)
        dead: dict[Any, Any] = {**fields, "dead_entry_id": entry_id, "dead_reason": reason}
        pipe.xadd(self.options.stream + DEAD_LETTER_SUFFIX, dead, maxlen=10_000, approximate=True)
        # Settled for good: sending it again could only dead-letter it again.
        self._acknowledge_event(pipe, fields.get("event_id", "").strip()[:128] or None)
        pipe.xack(self.options.stream, self.options.group, entry_id)
        pipe.execute()
        self.metrics.events.labels("invalid").inc()

    def _failed(self, exc: Exception) -> None:
        self._failures += 1
        self._own_pending = True
        self.metrics.failures.inc()
        delay = min(MAX_BACKOFF_SECONDS, 0.2 * 2**self._failures)
        logger.warning(
            "consumer iteration failed; retrying",
            extra={"error": repr(exc), "retry_in_seconds": delay},
        )
        # Drop broken connections so the retry reconnects (PostgreSQL may have restarted).
        db.connections.close_all()
        self.stop.wait(delay)


def _decoded(raw: dict[bytes, bytes]) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in raw.items()}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
