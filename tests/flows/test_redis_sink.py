"""The Redis sink's outage handling and refused records, on a virtual clock and the real Redis;
the write-behind writer with stand-in partitions, and where a Bytewax cluster builds it."""

from __future__ import annotations

import logging
import threading

import bytewax.operators as op
import orjson
import pytest
import redis
from bytewax.dataflow import Dataflow
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.testing import cluster_main

from alarmflow.metrics import REDIS_WAITING
from flows import redis_sink
from flows.common import by_source_part
from flows.kafka_io import LocalParts, part_name
from flows.redis_sink import (
    REMIND_S,
    Outage,
    Routed,
    WriteBehindSink,
    _Behind,
    _BehindPart,
    _PushPartition,
    unavailable,
)
from operators.rejects import SourceRecord
from state.idempotent import DUPLICATE, NotReplicated, OncePusher, Op, Push, Write
from state.keys import Backend


class Clock:
    """A virtual clock that ``sleep`` moves."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def failing(times: int, error: Exception, then: list) -> callable:
    calls = {"n": 0}

    def attempt():
        calls["n"] += 1
        if calls["n"] <= times:
            raise error
        return then

    return attempt


def sink_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "flows.redis_sink"]


def test_an_outage_is_waited_out_with_capped_backoff_and_one_line_per_state(caplog):
    clock = Clock()
    outage = Outage("t_wait", "redis://h:1/9", 300, clock.sleep, lambda: clock.now)
    attempt = failing(40, redis.ConnectionError("Connection refused"), [1, 0])

    with caplog.at_level(logging.INFO):
        assert outage.run(attempt) == [1, 0]

    assert max(clock.sleeps) == 5.0 and clock.sleeps[:3] == [0.1, 0.2, 0.4]
    waited = sum(clock.sleeps)
    lines = sink_lines(caplog)
    assert len(lines) == 2 + int(waited // REMIND_S)
    assert "unavailable (Connection refused); retrying for up to 300s" in lines[0]
    assert all("still unavailable" in line for line in lines[1:-1])
    assert f"back after {waited:.1f}s" in lines[-1]
    assert REDIS_WAITING.labels("t_wait")._value.get() == 0


def test_an_outage_longer_than_the_limit_raises_after_it(caplog):
    clock = Clock()
    outage = Outage("t_give_up", "redis://h:1/9", 60, clock.sleep, lambda: clock.now)
    waiting = REDIS_WAITING.labels("t_give_up")

    def attempt():
        assert waiting._value.get() == (0 if clock.now == 1000.0 else 1)
        raise redis.TimeoutError("Timeout reading from socket")

    with caplog.at_level(logging.INFO), pytest.raises(redis.TimeoutError):
        outage.run(attempt)

    assert clock.now - 1000.0 == pytest.approx(60)
    assert waiting._value.get() == 0
    assert "unavailable for 60s; stopping" in sink_lines(caplog)[-1]


def test_a_refusal_that_is_not_an_outage_is_raised_at_once():
    clock = Clock()
    outage = Outage("t_refused", "redis://h:1/9", 60, clock.sleep, lambda: clock.now)
    with pytest.raises(redis.ResponseError):
        outage.run(failing(1, redis.ResponseError("ERR Protocol error"), []))
    assert clock.sleeps == []


def test_records_written_before_a_replica_timeout_count_as_written_not_duplicate():
    clock = Clock()
    outage = Outage("t_replicas", "redis://h:1/9", 60, clock.sleep, lambda: clock.now)
    unreplicated = NotReplicated(0, 1, [1, DUPLICATE, 0])
    assert outage.run(failing(1, unreplicated, [DUPLICATE, DUPLICATE, DUPLICATE])) == [
        1,
        DUPLICATE,
        0,
    ]


@pytest.mark.parametrize(
    ("error", "outage"),
    [
        (redis.ConnectionError("Error 111 connecting"), True),
        (redis.TimeoutError("Timeout reading"), True),
        (redis.exceptions.ReadOnlyError("You can't write against a read only replica."), True),
        (redis.exceptions.BusyLoadingError("Redis is loading the dataset in memory"), True),
        (
            redis.exceptions.OutOfMemoryError("command not allowed when used memory > maxmemory"),
            True,
        ),
        (redis.ResponseError("BUSY Redis is busy running a script."), True),
        (redis.ResponseError("MISCONF Redis is configured to save RDB snapshots"), True),
        (redis.AuthenticationError("invalid username-password pair"), True),
        (redis.ResponseError("ERR Protocol error: invalid bulk length"), False),
        (redis.ResponseError("WRONGTYPE Operation against a key holding the wrong kind"), False),
    ],
)
def test_what_counts_as_redis_being_unavailable(error, outage):
    assert unavailable(error) is outage


class Collected:
    """A stand-in for the dead-letter partition: keeps what it is given."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []

    def write_batch(self, items):
        self.messages.extend(items)

    def close(self):
        pass


def routed(key_prefix: str, n: int, *writes: Write) -> Routed:
    source = SourceRecord("t.alert", 0, n, f"message {n}".encode())
    push = Push(Write(Op.MARK, f"{key_prefix}.m{n}", ttl=60), writes)
    return Routed(push, None, source)


def partition(pusher, flow: str) -> tuple[_PushPartition, Collected]:
    dlq = Collected()
    clock = Clock()
    outage = Outage(flow, "redis://h:1/9", 60, clock.sleep, lambda: clock.now)
    return _PushPartition(pusher, outage, dlq, flow, "alert", "qos"), dlq


def test_a_record_redis_refuses_goes_to_the_dlq_and_the_rest_is_written(redis_client, key_prefix):
    p = key_prefix
    redis_client.set(f"{p}.string", "not a list")
    items = [
        routed(p, 0, Write(Op.LPUSH, f"{p}.l", b"a")),
        routed(p, 1, Write(Op.LPUSH, f"{p}.string", b"b")),
        routed(p, 2, Write(Op.LPUSH, f"{p}.l", b"c")),
    ]
    sink, dlq = partition(OncePusher(redis_client, {Backend.QUEUE: 9}), "t_refused_record")

    sink.write_batch(items)

    assert redis_client.lrange(f"{p}.l", 0, -1) == [b"c", b"a"]
    [(_, message)] = dlq.messages
    record = orjson.loads(message)
    assert record["reason"] == "internal_error" and record["offset"] == 1
    assert record["error"].startswith("redis: ERR ") and "WRONGTYPE" in record["error"]
    assert record["raw"] == "message 1"


class RefusesBatchesWith:
    """A pusher whose server refuses a whole batch that holds the marker ``bad``."""

    def __init__(self, bad: str) -> None:
        self.bad = bad
        self.batches: list[int] = []

    def push(self, pushes):
        self.batches.append(len(pushes))
        if any(push.marker.key == self.bad for push in pushes):
            raise redis.ResponseError("ERR Protocol error: invalid bulk length")
        return [0] * len(pushes)


def test_a_batch_refused_as_a_whole_is_split_until_the_refused_record_is_alone(key_prefix):
    items = [routed(key_prefix, n) for n in range(8)]
    pusher = RefusesBatchesWith(f"{key_prefix}.m5")
    sink, dlq = partition(pusher, "t_split")

    sink.write_batch(items)

    assert [orjson.loads(m)["offset"] for _, m in dlq.messages] == [5]
    assert "invalid bulk length" in orjson.loads(dlq.messages[0][1])["error"]
    # 8 refused; 0-3 written; 4-7 refused; 4-5 refused; 4 written; 5 refused; 6-7 written.
    assert pusher.batches == [8, 4, 4, 2, 1, 1, 2]


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
    monkeypatch.setattr(redis_sink, "WRITE_BEHIND_BATCH", 2)
    monkeypatch.setattr(redis_sink, "WRITE_BEHIND_QUEUED", 3)
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
    assert sink_lines(caplog) == ["t-writer stopped on an error: Redis gone for good"]


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
