"""Guarded steps: a step that fails on one record rejects that record and the flow goes on.

Composite operators in the shape of Bytewax's Kafka operators: each returns :class:`Split`, the
``oks`` that the step produced and the ``errs`` (:class:`~operators.rejects.Rejection`) for the
records it could not handle, which the flow sends to the dead-letter topic. A
:class:`~operators.rejects.Rejected` raised by the step keeps its reason; any other exception
becomes ``internal_error`` naming the step and the exception type. Infrastructure failures
(:func:`infrastructure`: Redis and Kafka unreachable, or a Redis that takes no writes, as
:func:`flows.outage.unavailable` says) are not a record's fault and propagate, so the flow
stops and recovery replays.

Every item carries the Kafka message it came from; ``source_of(item)`` tells the guard which
one, so a rejection always names the offending message.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

import bytewax.operators as op
import redis
from bytewax.dataflow import Stream, operator
from bytewax.operators import KeyedStream
from confluent_kafka import KafkaException

from alarmflow.logs import RateLimited
from flows.outage import unavailable
from operators.rejects import Rejection, SourceRecord

X = TypeVar("X")
Y = TypeVar("Y")
S = TypeVar("S")

INFRASTRUCTURE: tuple[type[Exception], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    KafkaException,
)
"""Exceptions that say a service is unreachable: they stop the flow instead of a record."""


def infrastructure(exc: BaseException) -> bool:
    """Whether ``exc`` is a service's failure rather than a record's: a service unreachable, or
    a Redis that takes no writes (read-only, out of memory, too few replicas, ...: the
    converge lock raises these once it has waited them out for ``ALARMFLOW_REDIS_OUTAGE_S``)."""
    return isinstance(exc, INFRASTRUCTURE) or (
        isinstance(exc, redis.RedisError) and unavailable(exc)
    )


_warn = RateLimited(logging.getLogger(__name__)).warning


@dataclass(frozen=True)
class Split(Generic[Y]):
    """What a guarded step produced (``oks``) and the records it rejected (``errs``)."""

    oks: Stream[Y]
    errs: Stream[Rejection]


def rejection(step_id: str, exc: Exception, source: SourceRecord) -> Rejection:
    """The rejection of ``source`` by ``step_id``; infrastructure failures are re-raised."""
    if infrastructure(exc):
        raise exc
    return Rejection.from_exception(step_id, exc, source)


def _split(step_id: str, mixed: Stream[Y | Rejection]) -> Split[Y]:
    branch = op.branch(f"{step_id}_split", mixed, lambda item: not isinstance(item, Rejection))
    return Split(branch.trues, branch.falses)  # type: ignore[arg-type]


def guarded_map(
    step_id: str,
    up: Stream[X],
    fn: Callable[[X], Y],
    source_of: Callable[[X], SourceRecord],
) -> Split[Y]:
    """``fn`` on every item; an item ``fn`` fails on becomes a rejection."""

    def attempt(item: X) -> Y | Rejection:
        try:
            return fn(item)
        except Exception as exc:
            return rejection(step_id, exc, source_of(item))

    return _split(step_id, op.map(step_id, up, attempt))


class GuardedLogic(op.StatefulLogic[X, Y | Rejection, S]):
    """One key of :func:`guarded_stateful_map`: ``fn`` per item, the state from before an item
    ``fn`` fails on, and the state forgotten once it was left ``keep(state)`` seconds (wall
    time, ``wall``) without an item (kept for ever when ``keep`` gives None).

    ``keep`` runs on each item's new state inside the guard, so an item it fails on is
    rejected like one ``fn`` fails on (Bytewax asks for the timer outside any guard). A resumed
    state it fails on, which no item can answer for, is kept for ever, with a warning."""

    def __init__(
        self,
        step_id: str,
        fn: Callable[[S | None, X], tuple[S | None, Iterable[Y]]],
        source_of: Callable[[X], SourceRecord],
        copy_state: Callable[[S], S] | None,
        keep: Callable[[S], float | None] | None,
        wall: Callable[[], float],
        state: S | None,
    ) -> None:
        self.step_id, self.fn, self.source_of = step_id, fn, source_of
        self.copy_state, self.keep, self.wall = copy_state, keep, wall
        self.state = state
        self.since = wall()
        try:
            self.kept = self._kept(state)
        except Exception as exc:
            _warn("%s: a resumed state is kept for ever, keep failed on it: %r", step_id, exc)
            self.kept = None

    def _kept(self, state: S | None) -> float | None:
        return None if self.keep is None or state is None else self.keep(state)

    def on_item(self, value: X) -> tuple[list[Y | Rejection], bool]:
        state = self.state
        before = state if self.copy_state is None or state is None else self.copy_state(state)
        out: list[Y | Rejection]
        try:
            after, outputs = self.fn(state, value)
            out = list(outputs)
            kept = self._kept(after)
        except Exception as exc:
            after, out = before, [rejection(self.step_id, exc, self.source_of(value))]
            kept = self.kept
        self.state, self.since, self.kept = after, self.wall(), kept
        return out, self.DISCARD if after is None else self.RETAIN

    def on_notify(self) -> tuple[list[Y | Rejection], bool]:
        return [], self.DISCARD

    def notify_at(self) -> datetime | None:
        kept = self.kept
        return None if kept is None else datetime.fromtimestamp(self.since + kept, UTC)

    def snapshot(self) -> S:
        assert self.state is not None  # Bytewax snapshots only the keys it retains
        return copy.deepcopy(self.state)


def guarded_stateful_map(
    step_id: str,
    up: KeyedStream[X],
    fn: Callable[[S | None, X], tuple[S | None, Iterable[Y]]],
    source_of: Callable[[X], SourceRecord],
    copy_state: Callable[[S], S] | None = copy.deepcopy,
    keep: Callable[[S], float | None] | None = None,
    wall: Callable[[], float] = time.time,
) -> Split[tuple[str, Y]]:
    """``fn(state, item) -> (state, outputs)`` per key, as :func:`bytewax.operators.stateful_map`
    but with any number of outputs. An item ``fn`` fails on yields one rejection and leaves the
    key's state as it was before that item: ``copy_state`` copies it before each call (pass
    ``None`` when ``fn`` never changes the state it is given in place). A ``None`` state
    discards the key's state, and so does ``keep`` (see :class:`GuardedLogic`). The state is
    kept under the step ids ``op.stateful_map`` gives it, so a recovery store written by a
    flow that used ``op.stateful_map`` here resumes."""

    def build(resumed: S | None) -> GuardedLogic[X, Y, S]:
        return GuardedLogic(step_id, fn, source_of, copy_state, keep, wall, resumed)

    mixed = _as_stateful_map(step_id, up, build)
    branch = op.branch(f"{step_id}_split", mixed, lambda kv: not isinstance(kv[1], Rejection))
    return Split(branch.trues, op.map(f"{step_id}_errs", branch.falses, lambda kv: kv[1]))


@operator
def _as_stateful_map(
    step_id: str, up: KeyedStream[X], builder: Callable[[S | None], op.StatefulLogic]
) -> KeyedStream:
    """``op.stateful`` where ``op.stateful_map(step_id, ...)`` keeps its state
    (``{step_id}.stateful_flat_map.stateful``)."""
    return _as_stateful_flat_map("stateful_flat_map", up, builder)


@operator
def _as_stateful_flat_map(
    step_id: str, up: KeyedStream[X], builder: Callable[[S | None], op.StatefulLogic]
) -> KeyedStream:
    return op.stateful("stateful", up, builder)
