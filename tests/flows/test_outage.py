"""Waiting out a Redis outage (``flows/outage.py``) on a virtual clock: capped backoff, one
log line per change of state, giving up after the limit, and what counts as Redis being away."""

from __future__ import annotations

import logging
import threading

import pytest
import redis

from alarmflow.metrics import REDIS_WAITING
from flows.outage import REMIND_S, Outage, unavailable
from state.idempotent import DUPLICATE, NotReplicated


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


def outage_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "flows.outage"]


def test_an_outage_is_waited_out_with_capped_backoff_and_one_line_per_state(caplog):
    clock = Clock()
    outage = Outage("t_wait", "redis://h:1/9", 300, clock.sleep, lambda: clock.now)
    attempt = failing(40, redis.ConnectionError("Connection refused"), [1, 0])

    with caplog.at_level(logging.INFO):
        assert outage.run(attempt) == [1, 0]

    assert max(clock.sleeps) == 5.0 and clock.sleeps[:3] == [0.1, 0.2, 0.4]
    waited = sum(clock.sleeps)
    lines = outage_lines(caplog)
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
    assert "unavailable for 60s; stopping" in outage_lines(caplog)[-1]


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


def test_an_outage_is_no_longer_waited_out_once_the_flow_is_stopping(caplog):
    """The flow starts stopping (an error elsewhere, an interrupt) during the third attempt:
    the outage is raised after it, not waited out for the rest of the hour."""
    clock, stopping = Clock(), threading.Event()
    outage = Outage("t_stopping", "redis://h:1/9", 3600, clock.sleep, lambda: clock.now, stopping)
    attempts = {"n": 0}

    def attempt():
        attempts["n"] += 1
        if attempts["n"] == 3:
            stopping.set()
        raise redis.ConnectionError("Connection refused")

    with caplog.at_level(logging.INFO), pytest.raises(redis.ConnectionError):
        outage.run(attempt)

    assert attempts["n"] == 3 and clock.sleeps == [0.1, 0.2]
    assert (
        "the flow is stopping, so not waiting for it, recovery replays" in outage_lines(caplog)[-1]
    )
    assert REDIS_WAITING.labels("t_stopping")._value.get() == 0
