"""The converge flow's keyed state on Bytewax's side: a dimension's and a business's logic.

The state objects of :mod:`operators.converge` decide; the logic classes here give them a
clock and Bytewax's keep-or-discard answer, and keep a key's state as it was before a record or
timer that fails (the record, or the timers, go to the dead-letter topic):

- timers run on event time: an action's own time fires the timers due by it; a quiet key's
  timers fire when its clock (the event time of its last action plus the wall time since)
  reaches them; at end of input (``ALARMFLOW_TAIL=0``) every pending timer fires in due order;
- a dimension is discarded once idle, or once its clock (or, in a replay, the worker's newest
  action time less ``INDEX_TTL_S`` of lag) passed its last action by the longer of the index
  TTL and the window: no later action could match anything in it any more.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import bytewax.operators as op
from bytewax.dataflow import operator

from flows.guard import infrastructure, rejection
from operators.converge.biz import Business
from operators.converge.engine import INDEX_TTL_S, Dimension, Runtime
from operators.converge.records import Decision, Planned
from operators.rejects import Rejection, SourceRecord

MAX_WAIT = timedelta(days=3650)
"""Bound on a timer's wall-clock wait: event times are bounded, this keeps datetimes valid."""

Out = Decision | Rejection
V = TypeVar("V")
W = TypeVar("W")
S = TypeVar("S")
EXPIRY_CHECK = timedelta(seconds=60)
"""How often (wall time) an idle key checks the worker's watermark for expiry."""


class Watermark:
    """The newest action time this worker has seen (shared by its keys). A replay moves event
    time faster than wall time; a key then expires once the watermark has passed its last
    action by the quiet time plus ``INDEX_TTL_S`` of allowed lag between partitions."""

    def __init__(self) -> None:
        self.time = 0.0

    def see(self, t: float) -> None:
        self.time = max(self.time, t)


class DimensionLogic(op.StatefulBatchLogic):
    """One converge dimension: :meth:`Dimension.push` per action (the actions of a batch in
    one call), timers on its clock.

    The clock is the event time of the key's last action plus the wall time since: live, that
    is the wall clock; when old actions are replayed, a timer waits for the key's later
    actions, for that much wall time, or for end of input."""

    def __init__(
        self,
        resumed: Dimension | None,
        runtime: Runtime,
        wall: Callable[[], float] = time.time,
        watermark: Watermark | None = None,
    ) -> None:
        self.dimension = resumed or Dimension()
        self.runtime = runtime
        self.wall = wall
        self.watermark = watermark or Watermark()
        self.anchor = (self.dimension.clock, wall())

    def now(self) -> float:
        """The key's clock: its last action's event time plus the wall time since."""
        clock, wall = self.anchor
        return max(self.dimension.clock, clock + self.wall() - wall)

    def _keep(self, out: list[Out], expired: bool = False) -> tuple[list[Out], bool]:
        return out, self.DISCARD if expired or self.dimension.is_idle() else self.RETAIN

    def on_batch(self, values: list[Planned]) -> tuple[list[Out], bool]:
        """Each action in turn; a dimension left idle by one starts afresh for the next, as a
        discarded key would. The batch is decided on a copy of the state, made once per batch
        (a busy dimension's state grows with its actions): should an action fail, the key goes
        back to the state before the batch, which is decided again action by action
        (:meth:`_each_alone`). Deciding on the copy rather than keeping it aside leaves the key
        with dicts a copy has just compacted, which the next batch's copy clones whole
        (:meth:`Dimension.copy`)."""
        savepoint = self.dimension
        self.dimension = savepoint.copy()
        out: list[Out] = []
        for value in values:
            try:
                out += self.dimension.push(value.action, value.plan, self.runtime)
            except Exception as exc:
                self.dimension = savepoint
                if infrastructure(exc):  # waited out already: not again, action by action
                    raise
                return self._keep(self._each_alone(values))
            self._pushed(value)
        return self._keep(out)

    def _each_alone(self, values: list[Planned]) -> list[Out]:
        """Each action from a copy of the state before it: one that fails is rejected and the
        key keeps its state from before it. (With the counter lock, deciding an action again
        asks the lock again, as bkmonitor's retry of an action does.)"""
        out: list[Out] = []
        for value in values:
            before = self.dimension
            self.dimension = before.copy()
            try:
                out += self.dimension.push(value.action, value.plan, self.runtime)
            except Exception as exc:
                self.dimension = before
                out.append(rejection("converge", exc, value.source))
            self._pushed(value)
        return out

    def _pushed(self, value: Planned) -> None:
        """After an action: the key's clock anchored, the watermark moved, an idle dimension
        started afresh."""
        wall = self.wall()
        self.anchor = (self.dimension.clock, wall)
        # An action dated ahead of the wall clock (ALARMFLOW_MAX_FUTURE_S allows an hour)
        # moves the shared watermark only as far as now, or it would expire other keys.
        self.watermark.see(min(value.action.create_time, wall))
        if self.dimension.is_idle():
            self.dimension = Dimension()

    def _fire(self, now: float, fire: Callable[[], list[Decision]]) -> list[Out]:
        """What ``fire`` decides, the key's timers due by ``now``. Should one fail, the key goes
        back to its state before, and the timers due by ``now`` (with the actions they would
        retry) are dropped into one dead-letter record that names them."""
        before = self.dimension.copy()
        try:
            return list(fire())
        except Exception as exc:
            self.dimension = before
            dropped = self.dimension.drop_due(now)
            return [rejection("converge_timer", exc, TIMER_SOURCE._replace(value=dropped))]

    def on_notify(self) -> tuple[list[Out], bool]:
        now = self.now()
        out = self._fire(now, lambda: self.dimension.advance(now, self.runtime))
        expires = self.dimension.expires_at()
        horizon = max(now, self.watermark.time - INDEX_TTL_S)
        return self._keep(out, expires is not None and expires <= horizon)

    def on_eof(self) -> tuple[list[Out], bool]:
        shields = self.runtime.shields
        return self._keep(self._fire(math.inf, lambda: self.dimension.flush(shields)))

    def notify_at(self) -> datetime | None:
        """The next timer on the key's clock; when none, its expiry, checked against the
        watermark at least every ``EXPIRY_CHECK``."""
        due = self.dimension.next_due()
        expires = self.dimension.expires_at()
        if due is None and expires is None:
            return None
        clock, wall = self.anchor
        at = datetime.fromtimestamp(wall, UTC)
        at += min(timedelta(seconds=max((due or expires or 0.0) - clock, 0.0)), MAX_WAIT)
        if due is None:
            at = min(at, datetime.fromtimestamp(self.wall(), UTC) + EXPIRY_CHECK)
        return at

    def snapshot(self) -> Dimension:
        return self.dimension.copy()


TIMER_SOURCE = SourceRecord("converge.timers", -1, -1, b"")
"""Timers and the decisions they make come from no message: the DLQ record names them."""


def dimension_logic(rt: Runtime) -> Callable[[Dimension | None], DimensionLogic]:
    """The builder of a worker's dimension keys: one watermark shared by all of them."""
    watermark = Watermark()

    def build(resumed: Dimension | None) -> DimensionLogic:
        return DimensionLogic(resumed, rt, watermark=watermark)

    return build


def timer_source(decision: Decision) -> SourceRecord:
    return TIMER_SOURCE._replace(value=decision.id.encode())


class BusinessLogic(op.StatefulBatchLogic):
    """One business dimension: :meth:`Business.take` per decision (a batch's in one call),
    :meth:`Business.end` at end of input (summaries flushed after it still complete their
    windows)."""

    def __init__(self, resumed: Business | None, wall: Callable[[], float] = time.time) -> None:
        self.business = resumed or Business()
        self.wall = wall

    def _keep(self, out: list[Out]) -> tuple[list[Out], bool]:
        return out, self.RETAIN if self.business.windows else self.DISCARD

    def on_batch(self, values: list[Decision]) -> tuple[list[Out], bool]:
        """Each decision in turn; a business left without windows by one starts afresh for
        the next, as a discarded key would."""
        out: list[Out] = []
        for value in values:
            before = self.business.savepoint(value)
            try:
                out += self.business.take(value, self.wall())
            except Exception as exc:
                self.business = before
                out.append(rejection("biz", exc, timer_source(value)))
            if not self.business.windows:
                self.business = Business()
        return self._keep(out)

    def on_eof(self) -> tuple[list[Out], bool]:
        """Every window with all its summaries decided; should that fail, the business keeps
        its windows and one dead-letter record names the summaries they held."""
        before = self.business.copy()
        try:
            out: list[Out] = list(self.business.end())
        except Exception as exc:
            self.business = before
            held = ",".join(d.id for w in before.windows.values() for d in w.held).encode()
            out = [rejection("biz", exc, TIMER_SOURCE._replace(value=held))]
        return self._keep(out)

    def snapshot(self) -> Business:
        return self.business.copy()


@operator
def keyed_state(
    step_id: str,
    up: op.KeyedStream[V],
    builder: Callable[[S | None], op.StatefulBatchLogic[V, W, S]],
) -> op.KeyedStream[W]:
    """``stateful_batch`` under the step id ``op.stateful`` gives its state
    (``{step_id}.stateful_batch``): a recovery store written by the flow before it took its
    keys' items a batch at a time resumes their state."""
    return op.stateful_batch("stateful_batch", up, builder)
