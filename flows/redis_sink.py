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

:class:`WriteBehindSink` runs the same writes on a thread of the worker's own, one script
call at a time, each taking what was handed on since the last, while the worker works on its
next batch: the worker spends its CPU while Redis runs a batch's script, instead of waiting for
it. Recovery stays at-least-once: at the end of each
epoch the sink's snapshot waits until Redis acknowledged every batch the worker handed it, and
Bytewax commits an epoch only after its snapshots, so a resume never starts past a write Redis
has not taken. An error of a batch (an outage past its limit) stops the flow at the worker's
next batch or snapshot.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from itertools import chain
from operator import attrgetter, countOf
from typing import Generic, NamedTuple, Protocol, TypeVar

import redis
from bytewax.outputs import (
    DynamicSink,
    FixedPartitionedSink,
    StatefulSinkPartition,
    StatelessSinkPartition,
)

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
T_contra = TypeVar("T_contra", contravariant=True)


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


WRITE_BEHIND_BATCH = 5000
"""Records one script call of a write-behind writer takes at most: about what one call took
when the worker wrote the batches of a Bytewax activation itself. Redis runs a call without a
break, so this also bounds how long one call keeps Redis from its other clients."""
WRITE_BEHIND_QUEUED = 2 * WRITE_BEHIND_BATCH
"""Records a worker hands on ahead of its writer before it waits for the writer."""


T = TypeVar("T")


class _Behind(Generic[T]):
    """One worker's writer: a thread that writes, as one batch, all that the worker handed on
    since its last write (up to :data:`WRITE_BEHIND_BATCH` records, as ``size`` counts them).
    The worker waits only when it is :data:`WRITE_BEHIND_QUEUED` records ahead, or in
    :meth:`wait`. A write that raises stops the writer, and the worker raises the same error at
    its next call (the flow stops, and recovery replays what was not written)."""

    def __init__(
        self,
        partition: StatelessSinkPartition[T],
        name: str,
        size: Callable[[list[T]], int] = len,
    ) -> None:
        self._partition = partition
        self._size = size
        self._changed = threading.Condition()
        self._queued: deque[tuple[list[T], int]] = deque()
        self._queued_records = 0
        self._busy = False
        self._closing = False
        self._error: BaseException | None = None
        self._error_raised = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def write(self, items: list[T]) -> None:
        """Hand ``items`` on to be written after everything handed on before them."""
        size = self._size(items)
        with self._changed:
            while self._error is None and self._queued_records >= WRITE_BEHIND_QUEUED:
                self._changed.wait()
            self._raise_error()
            self._queued.append((items, size))
            self._queued_records += size
            self._changed.notify_all()

    def wait(self) -> None:
        """Return once everything handed on is written; raise what a write raised."""
        with self._changed:
            self._wait_idle()
            self._raise_error()

    def close(self) -> None:
        """Write what is left and stop the thread. A write's error is logged here unless it
        was raised already: Bytewax closes partitions while it unwinds, and an error raised
        then would abort the process."""
        with self._changed:
            self._wait_idle()
            self._closing = True
            self._changed.notify_all()
            error = None if self._error_raised else self._error
        self._thread.join()
        self._partition.close()
        if error is not None:
            log.error("%s stopped on an error: %s", self._thread.name, error, exc_info=error)

    def _wait_idle(self) -> None:
        """(Holding the lock) wait until everything handed on is written or a write failed."""
        while self._error is None and (self._queued or self._busy):
            self._changed.wait()

    def _raise_error(self) -> None:
        if self._error is not None:
            self._error_raised = True
            raise self._error

    def _take(self) -> list[T] | None:
        """The next batch to write (whole hand-ons, the first even if larger than the limit),
        or None once closing with nothing left."""
        with self._changed:
            while not self._queued and not self._closing:
                self._changed.wait()
            batch: list[T] = []
            size = 0
            while self._queued and (not batch or size + self._queued[0][1] <= WRITE_BEHIND_BATCH):
                items, one = self._queued.popleft()
                batch += items
                size += one
            self._queued_records -= size
            self._busy = bool(batch)
            return batch or None

    def _run(self) -> None:
        while (batch := self._take()) is not None:
            error = None
            try:
                self._partition.write_batch(batch)
            except BaseException as exc:  # handed to the worker, which raises it
                error = exc
            with self._changed:
                self._busy = False
                self._error = error
                self._changed.notify_all()
            if error is not None:
                return


class _BehindPart(StatefulSinkPartition[list[T], None]):
    """A partition of :class:`WriteBehindSink`: its batches go to its worker's writer, and its
    snapshot waits until they are written."""

    def __init__(self, behind: _Behind[T], release: Callable[[], None]) -> None:
        self._behind = behind
        self._release = release

    def write_batch(self, values: list[list[T]]) -> None:
        self._behind.write([one for batch in values for one in batch])

    def snapshot(self) -> None:
        self._behind.wait()

    def close(self) -> None:
        self._release()


class Writes(Protocol[T_contra]):
    """What a write-behind sink writes with: a partition per worker (:class:`PushSink`; the
    converge flow's ``OutputsWrites``)."""

    def partition(self, step_id: str) -> StatelessSinkPartition[T_contra]: ...


class WriteBehindSink(FixedPartitionedSink[list[T], None]):
    """Writes batches (lists of ``T``, :class:`Routed` for the Redis writes of a flow) as the
    partitions of ``sink`` do, behind the worker (see the module); ``size`` counts the records
    of a list.

    Items are ``(part, batch)``, ``part`` naming the Kafka partition the batch came from as
    the flow's Kafka source names its partitions (:func:`flows.kafka_io.part_name`), or one
    its worker reads (:class:`flows.kafka_io.LocalParts`), and ``parts()`` lists those
    partitions. Bytewax gives a sink partition and a source partition of the same name to the
    same worker, so a batch is written by the worker that read it, or that made it.
    The partitions of one worker share one writer: one connection, one thread, one batch in
    flight."""

    def __init__(
        self,
        sink: Writes[T],
        parts: Callable[[], list[str]],
        size: Callable[[list[T]], int] = len,
    ) -> None:
        self._sink = sink
        self._parts = parts
        self._size = size
        self._index: dict[str, int] = {}
        self._lock = threading.Lock()
        self._writers: dict[int, tuple[_Behind[T], int]] = {}

    def list_parts(self) -> list[str]:
        parts = self._parts()
        self._index = {part: i for i, part in enumerate(sorted(parts))}
        return parts

    def part_fn(self, item_key: str) -> int:
        return self._index.get(item_key, 0)

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _BehindPart[T]:
        # Bytewax builds a worker's partitions on that worker's thread.
        worker = threading.get_ident()
        with self._lock:
            behind, users = self._writers.get(worker, (None, 0))
            if behind is None:
                partition = self._sink.partition(step_id)
                behind = _Behind(partition, f"{step_id}-writer", self._size)
            self._writers[worker] = (behind, users + 1)
        return _BehindPart(behind, lambda: self._release(worker))

    def _release(self, worker: int) -> None:
        with self._lock:
            behind, users = self._writers[worker]
            if users > 1:
                self._writers[worker] = (behind, users - 1)
                return
            del self._writers[worker]
        behind.close()
