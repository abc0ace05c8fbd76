"""Writing behind the worker: a sink whose writes run on a thread of the worker's own.

:class:`WriteBehindSink` runs the writes of a sink's partitions
(:class:`~flows.redis_sink.PushSink`; the converge flow's ``OutputsWrites``) on one writer
thread per worker, one batch at a time, each taking what was handed on since the last, while
the worker works on its next batch: the worker spends its CPU while Redis runs a batch's
script, instead of waiting for it. Recovery
stays at-least-once: at the end of each epoch the sink's snapshot waits until every batch the
worker handed on is written, and Bytewax commits an epoch only after its snapshots, so a resume
never starts past a write Redis has not taken. An error of a batch (an outage past its limit)
stops the flow at the worker's next batch or snapshot.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, NamedTuple, Protocol, TypeVar

from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition, StatelessSinkPartition

from flows import input_end

log = logging.getLogger(__name__)

WRITE_BEHIND_BATCH = 5000
"""Records one script call of a write-behind writer takes at most: about what one call took
when the worker wrote the batches of a Bytewax activation itself. Redis runs a call without a
break, so this also bounds how long one call keeps Redis from its other clients."""
WRITE_BEHIND_QUEUED = 2 * WRITE_BEHIND_BATCH
"""Records a worker hands on ahead of its writer before it waits for the writer."""
WRITE_BEHIND_BATCH_BYTES = 32 << 20
"""Bytes of values one write takes at most, for large records: 5,000 alerts of 1 MiB would
otherwise be one write of 5 GiB."""
WRITE_BEHIND_QUEUED_BYTES = 2 * WRITE_BEHIND_BATCH_BYTES
"""Bytes of values a worker hands on ahead of its writer before it waits for the writer: while
Redis is away the worker reads on up to this (or :data:`WRITE_BEHIND_QUEUED` records), so large
records cannot fill the worker's memory."""


class Size(NamedTuple):
    """What a list handed on to a writer counts for in its queue."""

    records: int
    bytes: int


def counted(items: list) -> Size:
    """Each item a record, of no size in bytes."""
    return Size(len(items), 0)


T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)


class _Behind(Generic[T]):
    """One worker's writer: a thread that writes, as one batch, all that the worker handed on
    since its last write (up to :data:`WRITE_BEHIND_BATCH` records and
    :data:`WRITE_BEHIND_BATCH_BYTES`, as ``size`` counts them). The worker waits only when it is
    :data:`WRITE_BEHIND_QUEUED` records or :data:`WRITE_BEHIND_QUEUED_BYTES` ahead, or in
    :meth:`wait`. A write that raises stops the writer, and the worker raises the same error at
    its next call (the flow stops, and recovery replays what was not written)."""

    def __init__(
        self,
        partition: StatelessSinkPartition[T],
        name: str,
        size: Callable[[list[T]], Size] = counted,
    ) -> None:
        self._partition = partition
        self._size = size
        self._changed = threading.Condition()
        self._queued: deque[tuple[list[T], Size]] = deque()
        self._queued_records = 0
        self._queued_bytes = 0
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
            while self._error is None and (
                self._queued_records >= WRITE_BEHIND_QUEUED
                or self._queued_bytes >= WRITE_BEHIND_QUEUED_BYTES
            ):
                self._changed.wait()
            self._raise_error()
            self._queued.append((items, size))
            self._queued_records += size.records
            self._queued_bytes += size.bytes
            self._changed.notify_all()

    def wait(self) -> None:
        """Return once everything handed on is written; raise what a write raised."""
        with self._changed:
            self._wait_idle()
            self._raise_error()

    def close(self) -> None:
        """Write what is left and stop the thread. A write's error is logged here unless it
        was raised already: Bytewax closes partitions while it unwinds, and an error raised
        then would abort the process. (Closed while the flow stops before the end of its input,
        the writes left wait out no outage: :func:`flows.input_end.sink_closing`.)"""
        input_end.sink_closing()
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
            records = size = 0
            while self._queued and (
                not batch
                or (
                    records + self._queued[0][1].records <= WRITE_BEHIND_BATCH
                    and size + self._queued[0][1].bytes <= WRITE_BEHIND_BATCH_BYTES
                )
            ):
                items, one = self._queued.popleft()
                batch += items
                records += one.records
                size += one.bytes
            self._queued_records -= records
            self._queued_bytes -= size
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
    """Writes batches (lists of ``T``: :class:`~flows.redis_sink.Routed` for the Redis writes
    of a flow) as the partitions of ``sink`` do, behind the worker (see the module); ``size``
    counts the records and bytes of a list.

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
        size: Callable[[list[T]], Size] = counted,
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
