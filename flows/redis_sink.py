"""The Redis sink every access flow ends in: a Bytewax adapter over :mod:`state.idempotent`.

Each worker keeps one connection and writes each batch it is given as one script call.

- Redis unavailable (down, a failover, loading, out of memory, too few replicas): the batch is
  retried as :class:`~flows.outage.Outage` says, for up to ``ALARMFLOW_REDIS_OUTAGE_S``; the
  writes are idempotent, so a retry writes nothing twice.
- A record that Redis refuses for its own values (a key holding another type, ...) goes to
  the dead-letter topic with the error, and the rest of the batch is written. A batch refused
  as a whole for a reason that is not an outage is split until the refused record is alone.

The flows run it behind their workers (:class:`~flows.write_behind.WriteBehindSink`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from itertools import chain
from operator import attrgetter, countOf
from typing import NamedTuple

import redis
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from alarmflow import metrics
from alarmflow.config import Settings, mask_url
from alarmflow.connections import redis_client
from alarmflow.metrics import (
    DROPPED,
    END_TO_END_SECONDS,
    REDIS_BATCH_SECONDS,
    REDIS_ERRORS,
    REDIS_WAITING,
    SIGNALS,
    WRITTEN,
    Stage,
    observe_all,
)
from flows import input_end
from flows.kafka_io import DeliveredSink, Message, dead_letter
from flows.outage import Outage, unavailable
from flows.write_behind import Size
from operators import _native
from operators.drops import Drop
from operators.rejects import Reason, Rejection, SourceRecord, bounded_text
from state.idempotent import DUPLICATE, GATED, OncePusher, Op, Push, Result

CONNECT_TIMEOUT_S = 3.0
SOCKET_TIMEOUT_S = 10.0


class Routed(NamedTuple):
    """A record ready for Redis, with its Kafka timestamp for end-to-end latency and the
    message it came from (for the dead-letter topic, should Redis refuse it). (A named tuple:
    one is made per record.)"""

    push: Push
    timestamp_ms: int | None
    source: SourceRecord | None = None

    def source_record(self) -> SourceRecord:
        """Its source message, or for a record made by a timer a stand-in naming its marker."""
        if self.source is not None:
            return self.source
        return SourceRecord("", -1, -1, self.push.marker.key.encode())


def routed(pushes: Iterable[tuple[Push, SourceRecord]]) -> list[Routed]:
    """Each record's writes with the record they came from (its Kafka timestamp measures the
    end-to-end latency)."""
    return [Routed(push, record.timestamp_ms, record) for push, record in pushes]


_push_of = attrgetter("push")
_op_of = attrgetter("op")
_writes_of = attrgetter("push.writes")
_timestamp_of = attrgetter("timestamp_ms")


def routed_size(batch: list[Routed]) -> Size:
    """What a list of records counts for in a writer's queue: the records and the bytes of
    their values."""
    return Size(len(batch), _native.values_size(list(map(_push_of, batch))))


def _is_new(result: Result) -> bool:
    """A record's writes ran (its result is the signals it pushed)."""
    return type(result) is int and result >= 0


class _PushPartition(StatelessSinkPartition[Routed]):
    def __init__(
        self,
        pusher: OncePusher,
        outage: Outage,
        dlq: StatelessSinkPartition[Message],
        flow: str,
        kind: str,
        gate_reason: Drop,
    ) -> None:
        self._pusher = pusher
        self._outage = outage
        self._dlq = dlq
        self._dead_letter = dead_letter(flow)
        self._flow = flow
        self._stage = Stage(flow, "redis")
        self._batch_seconds = REDIS_BATCH_SECONDS.labels(flow)
        self._duplicates = DROPPED.labels(flow, Drop.DUPLICATE)
        self._gated = DROPPED.labels(flow, gate_reason)
        self._written = WRITTEN.labels(flow, kind)
        self._signals = SIGNALS.labels(flow)
        self._latency = END_TO_END_SECONDS.labels(flow)

    def _attempt(self, pushes: Sequence[Push]) -> list[Result]:
        with self._batch_seconds.time():
            return self._pusher.push(pushes)

    def _push(self, pushes: Sequence[Push]) -> list[Result]:
        """Per push its result, or its error text when Redis refused it; a batch refused as a
        whole (not for an outage) is split until the refused push is alone."""
        try:
            return self._outage.run(lambda: self._attempt(pushes))
        except redis.RedisError as exc:
            if unavailable(exc):
                raise
            if len(pushes) == 1:
                return [f"{type(exc).__name__}: {exc}"]
            half = len(pushes) // 2
            return self._push(pushes[:half]) + self._push(pushes[half:])

    def write_batch(self, items: list[Routed]) -> None:
        with self._stage.batch(len(items)):
            results = self._push([item.push for item in items])
        now_ms = time.time() * 1000
        new = [item for item, result in zip(items, results, strict=True) if _is_new(result)]
        written = countOf(map(_op_of, chain.from_iterable(map(_writes_of, new))), Op.LPUSH)
        signals = sum(filter(_is_new, results))
        duplicates, gated = countOf(results, DUPLICATE), countOf(results, GATED)
        latencies = [
            max(0.0, (now_ms - timestamp_ms) / 1000)
            for timestamp_ms in map(_timestamp_of, new)
            if timestamp_ms is not None
        ]
        refused: list[Message] = []
        for item, result in zip(items, results, strict=True):
            if type(result) is str:
                error = bounded_text(f"redis: {result}")
                rejection = Rejection(Reason.INTERNAL_ERROR, error, item.source_record())
                refused.append(self._dead_letter(rejection))
        self._duplicates.inc(duplicates)
        self._gated.inc(gated)
        self._written.inc(written)
        self._signals.inc(signals)
        observe_all(self._latency, latencies)
        if refused:
            self._dlq.write_batch(refused)

    def close(self) -> None:
        self._dlq.close()
        input_end.log_counts_at_exit(self._flow)


class _BatchesPartition(_PushPartition):
    """Takes lists of :class:`Routed` (a flow's batch each) and writes them as one batch."""

    def write_batch(self, items: list[list[Routed]]) -> None:  # type: ignore[override]
        super().write_batch([one for batch in items for one in batch])


class PushSink(DynamicSink[Routed]):
    """Writes :class:`Routed` records once each to the queue server of ``settings`` (each
    backend in its database there), and records Redis refuses to ``dlq``. ``kind`` labels the
    written-lists metric, ``gate_reason`` the drop counted when a record's gate closes, and
    ``metrics_endpoint`` is where this process serves its metrics. An unavailable Redis is
    waited for ``ALARMFLOW_REDIS_OUTAGE_S``, and each batch waits for
    ``ALARMFLOW_REDIS_MIN_REPLICAS`` replicas to acknowledge it. ``batched``: the items are
    lists of records (a flow's batch each) rather than records."""

    def __init__(
        self,
        settings: Settings,
        flow: str,
        kind: str,
        metrics_endpoint: metrics.Endpoint,
        dlq: DeliveredSink,
        gate_reason: Drop = Drop.QOS,
        batched: bool = False,
    ) -> None:
        self._settings = settings
        self._flow = flow
        self._kind = kind
        self._metrics_endpoint = metrics_endpoint
        self._dlq = dlq
        self._gate_reason = gate_reason
        self._partition = _BatchesPartition if batched else _PushPartition

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _PushPartition:
        return self.partition(step_id)

    def partition(self, step_id: str) -> _PushPartition:
        """A partition of this sink: its own connection to Redis and to the dead-letter topic."""
        metrics.serve(self._metrics_endpoint, self._flow)
        # Zero series, so that dashboards show "no errors" and "not waiting".
        REDIS_ERRORS.labels(self._flow)
        REDIS_WAITING.labels(self._flow)
        settings = self._settings
        client = redis_client(
            settings.redis_url,
            settings,
            socket_timeout=SOCKET_TIMEOUT_S,
            socket_connect_timeout=CONNECT_TIMEOUT_S,
        )
        pusher = OncePusher(client, settings.redis_dbs(), settings.redis_replicas)
        outage = Outage(self._flow, mask_url(settings.redis_url), settings.redis_outage_s)
        dlq = self._dlq.partition()
        return self._partition(pusher, outage, dlq, self._flow, self._kind, self._gate_reason)
