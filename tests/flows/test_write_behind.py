"""The write-behind writer (``flows/write_behind.py``) with stand-in partitions, and where a
Bytewax cluster builds it."""

from __future__ import annotations

import threading

import bytewax.operators as op
import pytest
import redis
from bytewax.dataflow import Dataflow
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.testing import cluster_main

from flows import write_behind
from flows.common import by_source_part
from flows.kafka_io import LocalParts, part_name
from flows.redis_sink import Routed
from flows.write_behind import Size, WriteBehindSink, _Behind, _BehindPart
from tests.flows.test_redis_sink import routed


class Gated:
    """A stand-in for a worker's Redis partition: each write waits until the test opens the
    gate (``started`` counts the writes begun), then keeps its batch or raises ``fails``."""

    def __init__(self, fails: Exception | None = None) -> None:
        self.batches: list[list] = []
        self.started = threading.Semaphore(0)
        self.gate = threading.Event()
        self.fails = fails
        self.closed = False

    def write_batch(self, items: list) -> None:
        self.started.release()
        assert self.gate.wait(10)
        if self.fails is not None:
            raise self.fails
        self.batches.append(list(items))

    def close(self) -> None:
        self.closed = True


def still_blocked(thread: threading.Thread) -> bool:
    """Whether ``thread`` is still waiting a moment after it started (the absence of progress
    can only be seen by waiting for it)."""
    thread.join(0.2)
    return thread.is_alive()


def test_writes_run_behind_the_worker_and_a_snapshot_waits_for_them():
    gated = Gated()
    behind = _Behind(gated, "t-writer")
    part = _BehindPart(behind, behind.close)

    part.write_batch([[1, 2]])
    assert gated.started.acquire(timeout=10)  # written behind: the worker went on
    part.write_batch([[3], [4]])
    part.write_batch([[5]])
    snapshot = threading.Thread(target=part.snapshot)
    snapshot.start()
    assert still_blocked(snapshot) and gated.batches == []

    gated.gate.set()
    snapshot.join(10)

    assert not snapshot.is_alive()
    # In order; what was handed on while a batch was written goes as one batch.
    assert gated.batches == [[1, 2], [3, 4, 5]]
    part.close()
    assert gated.closed


def test_the_worker_waits_once_it_is_the_limit_ahead_and_batches_keep_to_their_size(monkeypatch):
    monkeypatch.setattr(write_behind, "WRITE_BEHIND_BATCH", 2)
    monkeypatch.setattr(write_behind, "WRITE_BEHIND_QUEUED", 3)
    gated = Gated()
    behind = _Behind(gated, "t-writer")
    behind.write([1])
    assert gated.started.acquire(timeout=10)
    behind.write([2])
    behind.write([3, 4])  # 3 records ahead of the writer

    ahead = threading.Thread(target=behind.write, args=([5, 6, 7],))
    ahead.start()
    assert still_blocked(ahead)

    gated.gate.set()
    ahead.join(10)
    behind.close()

    # [2] and [3, 4] would pass the batch size together; a hand-on larger than it goes whole.
    assert gated.batches == [[1], [2], [3, 4], [5, 6, 7]]


def test_large_records_count_by_their_bytes_too(monkeypatch):
    """Items are sizes in bytes here: the worker waits once it is the byte limit ahead (as
    while Redis is away, so that large records cannot fill its memory), and a batch keeps to
    the byte limit of a write."""
    monkeypatch.setattr(write_behind, "WRITE_BEHIND_BATCH_BYTES", 100)
    monkeypatch.setattr(write_behind, "WRITE_BEHIND_QUEUED_BYTES", 150)
    gated = Gated()
    behind = _Behind(gated, "t-writer", lambda items: Size(len(items), sum(items)))
    behind.write([10])
    assert gated.started.acquire(timeout=10)
    behind.write([60])
    behind.write([50])
    behind.write([40])  # 150 bytes ahead of the writer

    ahead = threading.Thread(target=behind.write, args=([1],))
    ahead.start()
    assert still_blocked(ahead)

    gated.gate.set()
    ahead.join(10)
    behind.close()

    assert [one for batch in gated.batches for one in batch] == [10, 60, 50, 40, 1]
    # 60 + 50 would pass the limit; [1] may or may not join the last batch.
    assert gated.batches[:2] == [[10], [60]] and gated.batches[2][:2] == [50, 40]


def test_a_write_that_fails_is_raised_at_the_workers_next_call():
    gated = Gated(fails=redis.ConnectionError("Redis gone for good"))
    gated.gate.set()
    behind = _Behind(gated, "t-writer")
    behind.write([1])

    with pytest.raises(redis.ConnectionError, match="gone for good"):
        behind.wait()
    with pytest.raises(redis.ConnectionError):
        behind.write([2])
    behind.close()  # raised already: closing while Bytewax unwinds must not raise again
    assert gated.closed and gated.batches == []


def test_a_write_error_not_raised_before_closing_is_logged_at_close(caplog):
    gated = Gated(fails=redis.ConnectionError("Redis gone for good"))
    gated.gate.set()
    behind = _Behind(gated, "t-writer")
    behind.write([1])

    behind.close()

    assert gated.closed
    lines = [r.getMessage() for r in caplog.records if r.name == "flows.write_behind"]
    assert lines == ["t-writer stopped on an error: Redis gone for good"]


class Partitions:
    """A stand-in for the :class:`~flows.redis_sink.PushSink` behind a write-behind sink: each
    partition it makes is :class:`Gated` (open) and remembers the thread that asked for it."""

    def __init__(self) -> None:
        self.made: list[tuple[int, Gated]] = []

    def partition(self, step_id: str) -> Gated:
        gated = Gated()
        gated.gate.set()
        self.made.append((threading.get_ident(), gated))
        return gated


def test_a_write_behind_sink_routes_by_partition_name_and_shares_one_writer_per_worker():
    partitions = Partitions()
    sink = WriteBehindSink(partitions, lambda: ["1-t", "0-t", "2-t"])

    assert sink.list_parts() == ["1-t", "0-t", "2-t"]
    # Bytewax indexes the partitions of all workers in order.
    assert [sink.part_fn(key) for key in ("0-t", "1-t", "2-t", "")] == [0, 1, 2, 0]
    first, second = sink.build_part("s", "0-t", None), sink.build_part("s", "1-t", None)
    elsewhere: list = []
    worker = threading.Thread(target=lambda: elsewhere.append(sink.build_part("s", "2-t", None)))
    worker.start()
    worker.join(10)
    [(_, mine), (_, theirs)] = partitions.made

    first.write_batch([[1]])
    second.write_batch([[2]])
    second.snapshot()
    first.close()
    assert not mine.closed
    second.close()
    elsewhere[0].close()

    assert [one for batch in mine.batches for one in batch] == [1, 2]
    assert mine.closed and theirs.closed


class ReadAndRemembered(FixedPartitionedSource):
    """Kafka-like partitions of ``t.alert`` (as :func:`routed` makes them), one batch each,
    remembering the thread (the worker) that reads each."""

    def __init__(self) -> None:
        self.read_by: dict[str, int] = {}

    def list_parts(self) -> list[str]:
        return [part_name("t.alert", i) for i in range(6)]

    def build_part(self, step_id, for_part, resume_state) -> StatefulSourcePartition:
        self.read_by[for_part] = threading.get_ident()
        partition = int(for_part.split("-")[0])
        record = routed("p", partition)
        return OneBatch([record._replace(source=record.source._replace(partition=partition))])


class OneBatch(StatefulSourcePartition):
    def __init__(self, batch: list[Routed]) -> None:
        self._batch: list[Routed] | None = batch

    def next_batch(self) -> list[list[Routed]]:
        if self._batch is None:
            raise StopIteration
        batch, self._batch = self._batch, None
        return [batch]

    def snapshot(self) -> None:
        return None


def test_each_batch_is_written_by_the_worker_that_read_its_partition():
    source = ReadAndRemembered()
    partitions = Partitions()
    flow = Dataflow("t_write_behind")
    batches = op.input("in", flow, source)
    op.output(
        "out",
        op.filter_map("keyed", batches, by_source_part),
        WriteBehindSink(partitions, source.list_parts),
    )

    cluster_main(flow, [], 0, worker_count_per_proc=2)

    written_by = {
        part_name(r.source.topic, r.source.partition): worker
        for worker, gated in partitions.made
        for batch in gated.batches
        for r in batch
    }
    assert len(set(source.read_by.values())) == 2  # both workers read
    assert written_by == source.read_by


class Numbered(FixedPartitionedSource):
    """``parts`` partitions of ``t``, each reading ten numbers in one batch, recording in
    ``local`` which worker reads which (as the flow's Kafka source does)."""

    def __init__(self, parts: int, local: LocalParts) -> None:
        self.parts = parts
        self.local = local

    def list_parts(self) -> list[str]:
        return [part_name("t", i) for i in range(self.parts)]

    def build_part(self, step_id, for_part, resume_state) -> StatefulSourcePartition:
        self.local.record(for_part)
        first = 10 * int(for_part.split("-")[0])
        return OneBatch(list(range(first, first + 10)))


@pytest.mark.parametrize("parts", [3, 1])
def test_items_keyed_by_local_parts_are_written_by_the_worker_that_made_them(parts):
    """As the converge flow writes its outputs: items spread over the workers, then keyed by
    a partition their worker reads, are written by that worker; a worker reading none hands
    its items to the worker reading the first partition."""
    local = LocalParts()
    source = Numbered(parts, local)
    partitions = Partitions()
    flow = Dataflow("t_local_parts")
    numbers = op.flat_map("numbers", op.input("in", flow, source), lambda batch: batch)
    made = op.map("made", op.redistribute("spread", numbers), lambda n: (n, threading.get_ident()))
    keyed = op.map("keyed", made, lambda item: (local.part(), [item]))
    op.output("out", keyed, WriteBehindSink(partitions, source.list_parts))

    cluster_main(flow, [], 0, worker_count_per_proc=2)

    written = [
        (number, maker, writer)
        for writer, gated in partitions.made
        for batch in gated.batches
        for number, maker in batch
    ]
    assert sorted(number for number, _, _ in written) == list(range(10 * parts))
    assert len({maker for _, maker, _ in written}) == 2  # both workers made some
    if parts == 3:
        assert all(writer == maker for _, maker, writer in written)
    else:
        [(reader, _)] = partitions.made
        assert all(writer == reader for _, _, writer in written)
