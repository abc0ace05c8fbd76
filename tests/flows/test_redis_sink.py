"""The Redis sink's outage handling and refused records, on a virtual clock and the real Redis."""

from __future__ import annotations

import logging

import orjson
import pytest
import redis

from alarmflow.metrics import REDIS_WAITING
from flows.redis_sink import (
    REMIND_S,
    Outage,
    Routed,
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
