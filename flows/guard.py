"""Guarded steps: a step that fails on one record rejects that record and the flow goes on.

Composite operators in the shape of Bytewax's Kafka operators: each returns :class:`Split`, the
``oks`` that the step produced and the ``errs`` (:class:`~operators.rejects.Rejection`) for the
records it could not handle, which the flow sends to the dead-letter topic. A
:class:`~operators.rejects.Rejected` raised by the step keeps its reason; any other exception
becomes ``internal_error`` naming the step and the exception type. Infrastructure failures
(:data:`INFRASTRUCTURE`: Redis and Kafka unreachable) are not a record's fault and propagate,
so the flow stops and recovery replays.

Every item carries the Kafka message it came from; ``source_of(item)`` tells the guard which
one, so a rejection always names the offending message.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

import bytewax.operators as op
import redis
from bytewax.dataflow import Stream
from bytewax.operators import KeyedStream
from confluent_kafka import KafkaException

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


@dataclass(frozen=True)
class Split(Generic[Y]):
    """What a guarded step produced (``oks``) and the records it rejected (``errs``)."""

    oks: Stream[Y]
    errs: Stream[Rejection]


def rejection(step_id: str, exc: Exception, source: SourceRecord) -> Rejection:
    """The rejection of ``source`` by ``step_id``; infrastructure failures are re-raised."""
    if isinstance(exc, INFRASTRUCTURE):
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


def guarded_stateful_map(
    step_id: str,
    up: KeyedStream[X],
    fn: Callable[[S | None, X], tuple[S | None, Iterable[Y]]],
    source_of: Callable[[X], SourceRecord],
    copy_state: Callable[[S], S] | None = copy.deepcopy,
) -> Split[tuple[str, Y]]:
    """``fn(state, item) -> (state, outputs)`` per key, as :func:`bytewax.operators.stateful_map`
    but with any number of outputs. An item ``fn`` fails on yields one rejection and leaves the
    key's state as it was before that item: ``copy_state`` copies it before each call (pass
    ``None`` when ``fn`` never changes the state it is given in place). A ``None`` state
    discards the key's state."""

    def attempt(state: S | None, item: X) -> tuple[S | None, list[Y | Rejection]]:
        before = state if copy_state is None or state is None else copy_state(state)
        try:
            after, outputs = fn(state, item)
            return after, list(outputs)
        except Exception as exc:
            return before, [rejection(step_id, exc, source_of(item))]

    mapped = op.stateful_map(step_id, up, attempt)
    flat = op.flat_map(f"{step_id}_flat", mapped, lambda kv: [(kv[0], out) for out in kv[1]])
    branch = op.branch(f"{step_id}_split", flat, lambda kv: not isinstance(kv[1], Rejection))
    return Split(branch.trues, op.map(f"{step_id}_errs", branch.falses, lambda kv: kv[1]))
