"""The Redis sink every access flow ends in: a Bytewax adapter over :mod:`state.idempotent`.

Each worker keeps one connection and writes each batch it is given as one pipeline. A
Redis error is retried with backoff (the writes are idempotent, so a retry is safe); if
Redis stays down the flow stops and recovery replays from the last snapshot.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import redis
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from alarmflow import metrics
from alarmflow.config import Settings
from alarmflow.connections import redis_client
from alarmflow.metrics import (
    DROPPED,
    END_TO_END_SECONDS,
    REDIS_BATCH_SECONDS,
    REDIS_ERRORS,
    SIGNALS,
    WRITTEN,
    Stage,
)
from operators.drops import Drop
from state.idempotent import DUPLICATE, GATED, OncePusher, Op, Push

log = logging.getLogger(__name__)

RETRY_DELAYS_S = (0.5, 1.0, 2.0, 4.0)


@dataclass(frozen=True)
class Routed:
    """A record ready for Redis, with its Kafka timestamp for end-to-end latency."""

    push: Push
    timestamp_ms: int | None


class _PushPartition(StatelessSinkPartition[Routed]):
    def __init__(self, pusher: OncePusher, flow: str, kind: str, gate_reason: Drop) -> None:
        self._pusher = pusher
        self._flow = flow
        self._stage = Stage(flow, "redis")
        self._batch_seconds = REDIS_BATCH_SECONDS.labels(flow)
        self._errors = REDIS_ERRORS.labels(flow)
        self._duplicates = DROPPED.labels(flow, Drop.DUPLICATE)
        self._gated = DROPPED.labels(flow, gate_reason)
        self._written = WRITTEN.labels(flow, kind)
        self._signals = SIGNALS.labels(flow)
        self._latency = END_TO_END_SECONDS.labels(flow)

    def _push_with_retry(self, pushes: list[Push]) -> list[int]:
        for delay in (*RETRY_DELAYS_S, None):
            try:
                with self._batch_seconds.time():
                    return self._pusher.push(pushes)
            except redis.RedisError as exc:
                self._errors.inc()
                if delay is None:
                    raise
                log.warning(
                    "%s: Redis write failed (%s); retrying in %.1fs", self._flow, exc, delay
                )
                time.sleep(delay)
        raise AssertionError("unreachable")

    def write_batch(self, items: list[Routed]) -> None:
        with self._stage.batch(len(items)):
            results = self._push_with_retry([item.push for item in items])
        now_ms = time.time() * 1000
        duplicates = gated = written = signals = 0
        for item, result in zip(items, results, strict=True):
            if result == DUPLICATE:
                duplicates += 1
                continue
            if result == GATED:
                gated += 1
                continue
            written += item.push.count(Op.LPUSH)
            signals += result
            if item.timestamp_ms is not None:
                self._latency.observe(max(0.0, (now_ms - item.timestamp_ms) / 1000))
        self._duplicates.inc(duplicates)
        self._gated.inc(gated)
        self._written.inc(written)
        self._signals.inc(signals)

    def close(self) -> None:
        log.info("end of input: %s", metrics.summary(self._flow))


class PushSink(DynamicSink[Routed]):
    """Writes :class:`Routed` records once each to the queue server of ``settings`` (each
    backend in its database there). ``kind`` labels the written-lists metric, ``gate_reason``
    the drop counted when a record's gate closes, and ``metrics_endpoint``
    is where this process serves its metrics."""

    def __init__(
        self,
        settings: Settings,
        flow: str,
        kind: str,
        metrics_endpoint: metrics.Endpoint,
        gate_reason: Drop = Drop.QOS,
    ) -> None:
        self._settings = settings
        self._flow = flow
        self._kind = kind
        self._metrics_endpoint = metrics_endpoint
        self._gate_reason = gate_reason

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _PushPartition:
        metrics.serve(self._metrics_endpoint, self._flow)
        REDIS_ERRORS.labels(self._flow)  # a zero series, so dashboards show "no errors"
        settings = self._settings
        client = redis_client(
            settings.redis_url, settings, socket_timeout=10, socket_connect_timeout=3
        )
        pusher = OncePusher(client, settings.redis_dbs())
        return _PushPartition(pusher, self._flow, self._kind, self._gate_reason)
