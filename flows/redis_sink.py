"""The Redis sink every access flow ends in: a Bytewax adapter over :mod:`state.idempotent`.

Each worker keeps one connection and writes each batch it is given as one script call.

- Redis unreachable or busy (connection refused or lost, timeouts, ``READONLY`` during a
  failover, ``LOADING``, ``OOM``, fewer replicas than ``ALARMFLOW_REDIS_MIN_REPLICAS``
  acknowledging): the batch is retried with capped backoff for up to
  ``ALARMFLOW_REDIS_OUTAGE_S``, logged once when Redis goes, every :data:`REMIND_S` while it
  stays away and once when it is back; the writes are idempotent, so a retry writes nothing
  twice. Past that time the flow stops and recovery replays from the last snapshot.
- A record that Redis refuses for its own values (a key holding another type, ...) goes to
  the dead-letter topic with the error, and the rest of the batch is written. A batch refused
  as a whole for a reason that is not an outage is split until the refused record is alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from itertools import chain
from operator import attrgetter, countOf
from typing import NamedTuple, TypeVar

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
from operators.drops import Drop
from operators.rejects import Reason, Rejection, SourceRecord, bounded_text
from state.idempotent import DUPLICATE, GATED, NotReplicated, OncePusher, Op, Push, Result

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 3.0
SOCKET_TIMEOUT_S = 10.0
FIRST_DELAY_S = 0.1
MAX_DELAY_S = 5.0
REMIND_S = 30.0

# Refusals that say the server cannot take writes right now, not that a record is bad.
_UNAVAILABLE = (
    redis.ConnectionError,  # also refused or wrong password, LOADING, no master from Sentinel
    redis.TimeoutError,
    redis.exceptions.ReadOnlyError,  # a replica now: the master failed over
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.MasterDownError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,
    NotReplicated,
)
_UNAVAILABLE_CODES = ("BUSY", "MISCONF", "NOREPLICAS")


def unavailable(exc: redis.RedisError) -> bool:
    """Whether ``exc`` says Redis cannot take writes now (rather than refusing a batch)."""
    return isinstance(exc, _UNAVAILABLE) or str(exc).startswith(_UNAVAILABLE_CODES)


def _merge(earlier: list[Result] | None, later: list[Result]) -> list[Result]:
    """Results of a batch retried after an unreplicated attempt: a record the earlier attempt
    wrote reads as a duplicate the second time, and counts as written."""
    if earlier is None:
        return later
    pairs = zip(earlier, later, strict=True)
    return [e if r == DUPLICATE and e != DUPLICATE else r for e, r in pairs]


R = TypeVar("R")


class Outage:
    """Retries an attempt while Redis is unavailable, for ``give_up_s`` at most, with capped
    backoff; logs once per change of state and keeps the waiting gauge."""

    def __init__(
        self,
        flow: str,
        server: str,
        give_up_s: float,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._flow = flow
        self._server = server
        self._give_up_s = give_up_s
        self._sleep = sleep
        self._clock = clock
        self._errors = REDIS_ERRORS.labels(flow)
        self._waiting = REDIS_WAITING.labels(flow)

    def run(self, attempt: Callable[[], R]) -> R:
        """``attempt()``'s result once Redis takes it; an error that is not an outage, or an
        outage longer than ``give_up_s``, is raised. (A batch of writes that Redis took but
        could not replicate is merged with its retry, see :func:`_merge`.)"""
        started: float | None = None
        reminded = 0.0
        delay = FIRST_DELAY_S
        earlier: list[Result] | None = None
        while True:
            try:
                results = attempt()
            except redis.RedisError as exc:
                if not unavailable(exc):
                    raise
                if isinstance(exc, NotReplicated):
                    earlier = _merge(earlier, exc.results)
                error = exc
            else:
                if started is not None:
                    self._waiting.dec()
                    log.warning(
                        "%s: Redis at %s is back after %.1fs; going on",
                        self._flow,
                        self._server,
                        self._clock() - started,
                    )
                return results if earlier is None else _merge(earlier, results)  # type: ignore[arg-type,return-value]
            self._errors.inc()
            now = self._clock()
            if started is None:
                started = reminded = now
                self._waiting.inc()
                log.warning(
                    "%s: Redis at %s unavailable (%s); retrying for up to %.0fs",
                    self._flow,
                    self._server,
                    error,
                    self._give_up_s,
                )
            elif now - reminded >= REMIND_S:
                reminded = now
                log.warning(
                    "%s: Redis at %s still unavailable after %.0fs (%s)",
                    self._flow,
                    self._server,
                    now - started,
                    error,
                )
            if now - started >= self._give_up_s:
                self._waiting.dec()
                input_end.failed()
                log.error(
                    "%s: Redis at %s unavailable for %.0fs; stopping, recovery replays",
                    self._flow,
                    self._server,
                    now - started,
                )
                raise error
            self._sleep(min(delay, max(0.0, started + self._give_up_s - now)))
            delay = min(delay * 2, MAX_DELAY_S)


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


_op_of = attrgetter("op")
_writes_of = attrgetter("push.writes")
_timestamp_of = attrgetter("timestamp_ms")


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
        dlq = self._dlq.build(f"{step_id}_dlq", worker_index, worker_count)
        return self._partition(pusher, outage, dlq, self._flow, self._kind, self._gate_reason)
