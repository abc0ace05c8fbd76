"""The converge flow's keyed logic (``flows/converge_logic.py``) on a fake wall clock."""

from __future__ import annotations

from dataclasses import replace

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource

from flows.converge_logic import (
    BusinessLogic,
    DimensionLogic,
    Watermark,
    dimension_logic,
    keyed_state,
)
from operators.converge.engine import DEFAULT, INDEX_TTL_S, Dimension, Runtime
from operators.converge.plan import plan
from operators.converge.records import Planned
from operators.rejects import Reason, Rejection, SourceRecord
from tests.operators.converge.test_engine import BusyLock
from tests.operators.converge.timeline import T0, WEBHOOK, at, push

SOURCE = SourceRecord("actions", 0, 0, b"{}")


class Wall:
    """A wall clock the test moves."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def planned(action) -> Planned:
    return Planned(SOURCE, action, plan(action))


def test_replayed_old_actions_wait_on_the_dimension_clock_not_the_wall_clock():
    wall = Wall(T0 + 10**6)
    logic = DimensionLogic(None, DEFAULT, wall)
    logic.on_batch([planned(at(0, push(1))[1])])
    decisions, _ = logic.on_batch([planned(at(10, push(2))[1])])
    assert [d.decision for d in decisions] == ["sleep"]
    assert logic.notify_at().timestamp() == wall.now + 30, "30 s of quiet away, not overdue"
    wall.now += 29
    assert logic.on_notify() == ([], logic.RETAIN)
    decisions, keep = logic.on_eof()
    assert [d.decision for d in decisions][-1] == "skipped" and keep == logic.RETAIN


def test_tail_mode_busy_lock_waits_on_wall_time_then_converges():
    """Live: each notify fires the lock retry due by the key's clock (no double counting of
    the wall time), decision times never run ahead of the wall clock, and the action is not
    timed out (it never slept)."""
    wall = Wall(T0)
    lock = BusyLock(busy=30)
    logic = DimensionLogic(None, Runtime(lock), wall)
    assert logic.on_batch([planned(at(0, push(1, timeout=10))[1])]) == ([], logic.RETAIN)
    made = []
    while not made:
        wall.now = logic.notify_at().timestamp()
        made, _ = logic.on_notify()
    assert [(d.decision, d.time) for d in made] == [("execute", T0 + 90)]
    assert wall.now == T0 + 90 and made[0].opened


def test_a_record_the_step_fails_on_is_rejected_and_the_state_kept():
    class Broken:
        def acquire(self, dimension, parallel):
            raise ValueError("boom")

        def release(self, dimension):
            raise AssertionError("never acquired")

    logic = DimensionLogic(None, DEFAULT, Wall(T0))
    logic.on_batch([planned(at(0, push(1, converge_config=WEBHOOK | {"count": 2}))[1])])
    before = logic.dimension.copy()
    logic.runtime = Runtime(Broken())
    out, keep = logic.on_batch([planned(at(1, push(2, converge_config=WEBHOOK | {"count": 2}))[1])])
    [rejected] = out
    assert isinstance(rejected, Rejection) and rejected.reason == Reason.INTERNAL_ERROR
    assert rejected.error.startswith("converge: ValueError") and rejected.record == SOURCE
    assert logic.dimension == before and keep == logic.RETAIN


def test_a_timer_the_step_fails_on_is_dead_lettered_and_dropped():
    class BrokenLater:
        def __init__(self) -> None:
            self.calls = 0

        def acquire(self, dimension, parallel):
            self.calls += 1
            if self.calls > 1:
                raise ValueError("boom")
            return False

        def release(self, dimension):
            raise AssertionError("never acquired")

    wall = Wall(T0)
    logic = DimensionLogic(None, Runtime(BrokenLater()), wall)
    assert logic.on_batch([planned(at(0, push(1))[1])]) == ([], logic.RETAIN)
    wall.now = T0 + 3
    [rejected], keep = logic.on_notify()
    assert rejected.reason == Reason.INTERNAL_ERROR and rejected.record.value == b"retry:1"
    assert logic.dimension.timers == [] and logic.dimension.queued == {}
    assert keep == logic.RETAIN, "the index still counts action 1 for the others"


def test_a_timer_that_fails_at_end_of_input_is_dead_lettered_and_the_flow_goes_on(monkeypatch):
    """The end of input fires every timer as a notify does, behind the same guard: a timer
    that fails there is dead-lettered by name and the key goes back to its state before."""
    logic = DimensionLogic(None, DEFAULT, Wall(T0 + 10**6))
    logic.on_batch([planned(at(0, push(1))[1])])
    logic.on_batch([planned(at(10, push(2))[1])])
    [timer] = logic.dimension.timers  # action 2 sleeps: its retry

    def broken(self, *args, **kwargs):
        raise ValueError("boom")

    monkeypatch.setattr(Dimension, "_run", broken)
    [rejected], keep = logic.on_eof()

    assert rejected.reason == Reason.INTERNAL_ERROR
    assert rejected.error == "converge_timer: ValueError: boom"
    assert rejected.record.value == f"{timer.kind}:{timer.ref}".encode() == b"retry:2"
    assert logic.dimension.timers == [] and logic.dimension.queued == {}
    assert keep == logic.RETAIN, "the index still counts both actions"


BIZ_COLLECT = {
    "is_enabled": True,
    "converge_func": "collect",
    "timedelta": 60,
    "need_biz_converge": True,
    "sub_converge_config": {"converge_func": "collect_alarm"},
}
"""A collect converge whose summaries a business summarises in turn."""


def test_a_business_whose_end_of_input_fails_dead_letters_what_it_held(monkeypatch):
    business = BusinessLogic(None)
    held = []
    for n in range(3):
        logic = DimensionLogic(None, DEFAULT)
        for k in range(2):
            action = at(n + k, push(10 * n + k, strategy_id=n, converge_config=BIZ_COLLECT))[1]
            for decision in logic.on_batch([planned(replace(action, plugin_type="notice"))])[0]:
                business.on_batch([decision])
        for decision in logic.on_eof()[0]:
            held += [decision.id] if not business.on_batch([decision])[0] else []
    assert held, "summaries held for the business window"

    def broken(window, now):
        raise ValueError("boom")

    monkeypatch.setattr("operators.converge.biz._decide", broken)
    [rejected], keep = business.on_eof()

    assert rejected.error == "biz: ValueError: boom"
    assert rejected.record.value == ",".join(held).encode()
    assert business.business.windows and keep == business.RETAIN


def test_a_quiet_dimension_is_discarded_once_nothing_can_refer_to_it():
    """Live: its clock (event time plus wall time) passes its last action by the index TTL
    (longer than its 60 s window)."""
    wall = Wall(T0)
    logic = DimensionLogic(None, DEFAULT, wall)
    logic.on_batch([planned(at(0, push(1, converge_config=WEBHOOK | {"timedelta": 60}))[1])])
    assert logic.notify_at().timestamp() == T0 + 60, "checks the watermark every minute"
    wall.now = T0 + INDEX_TTL_S - 1
    assert logic.on_notify()[1] == logic.RETAIN
    assert logic.notify_at().timestamp() == T0 + INDEX_TTL_S
    wall.now = T0 + INDEX_TTL_S
    assert logic.on_notify()[1] == logic.DISCARD


def test_a_worker_s_keys_share_one_watermark():
    build = dimension_logic(DEFAULT)
    one, two = build(None), build(None)
    one.on_batch([planned(at(0, push(1))[1])])
    assert two.watermark is one.watermark and two.watermark.time == T0


def test_in_a_replay_a_dimension_expires_by_the_worker_s_watermark():
    """Event time runs ahead of wall time: once another key's action is newer than this key's
    last action by the TTL plus the TTL of allowed lag, nothing can refer to this key."""
    wall, watermark = Wall(T0 + 10**6), Watermark()
    quiet = DimensionLogic(None, DEFAULT, wall, watermark)
    busy = DimensionLogic(None, DEFAULT, wall, watermark)
    quiet.on_batch([planned(at(0, push(1, converge_config=WEBHOOK | {"timedelta": 60}))[1])])
    config = WEBHOOK | {"timedelta": 60}
    busy.on_batch([planned(at(2 * INDEX_TTL_S - 1, push(2, converge_config=config))[1])])
    assert quiet.on_notify()[1] == quiet.RETAIN
    busy.on_batch([planned(at(2 * INDEX_TTL_S, push(3, converge_config=config))[1])])
    assert quiet.on_notify()[1] == quiet.DISCARD


def test_an_action_dated_ahead_of_the_wall_clock_does_not_expire_other_keys():
    """Live, an action an hour ahead (``ALARMFLOW_MAX_FUTURE_S`` takes it) moves the shared
    watermark only to now: a key whose window is still open is kept, and decides its next
    action as converged."""
    wall, watermark = Wall(T0), Watermark()
    config = WEBHOOK | {"timedelta": 300, "converge_func": "skip_when_exceed", "count": 1}
    quiet = DimensionLogic(None, DEFAULT, wall, watermark)
    ahead = DimensionLogic(None, DEFAULT, wall, watermark)
    quiet.on_batch([planned(at(0, push(1, converge_config=config))[1])])
    wall.now = T0 + 60
    ahead.on_batch([planned(at(3659, push(2, strategy_id=9, converge_config=config))[1])])
    wall.now = T0 + 120
    assert quiet.on_notify()[1] == quiet.RETAIN
    [decision] = quiet.on_batch([planned(at(121, push(3, converge_config=config))[1])])[0]
    assert decision.decision == "skipped"


def test_business_windows_wait_for_summaries_that_arrive_after_end_of_input():
    dims = [DimensionLogic(None, DEFAULT) for _ in range(3)]
    business = BusinessLogic(None)
    for n, logic in enumerate(dims):
        for k in range(2):
            action = at(n + k, push(10 * n + k, strategy_id=n, converge_config=BIZ_COLLECT))[1]
            for decision in logic.on_batch([planned(replace(action, plugin_type="notice"))])[0]:
                business.on_batch([decision])
    assert business.on_eof() == ([], business.RETAIN)
    out = []
    for logic in dims:
        for decision in logic.on_eof()[0]:
            out += business.on_batch([decision])[0]
    assert [d.decision for d in out] == ["suppressed"] * 3 + ["collect"]


def test_a_key_s_batch_is_decided_action_by_action_and_a_failing_one_rejected():
    """Actions 1 and 3 decided as if 2 had never come; 2 rejected."""
    config = WEBHOOK | {"count": 2, "converge_func": "skip_when_exceed"}
    batch = [planned(at(k, push(k, converge_config=config))[1]) for k in (1, 2, 3)]
    broken = batch[1]._replace(plan=replace(batch[1].plan, config="not a config"))
    logic = DimensionLogic(None, DEFAULT, Wall(T0))
    out, keep = logic.on_batch([batch[0], broken, batch[2]])
    alone = DimensionLogic(None, DEFAULT, Wall(T0))
    expected = alone.on_batch([batch[0]])[0] + alone.on_batch([batch[2]])[0]
    assert [o for o in out if not isinstance(o, Rejection)] == expected
    [rejected] = [o for o in out if isinstance(o, Rejection)]
    assert rejected.error.startswith("converge: AttributeError") and keep == logic.RETAIN


def test_a_key_s_batch_copies_its_state_once_unless_an_action_fails(monkeypatch):
    """A busy dimension's state grows with its actions: copying it per action made a batch's
    cost grow with the square of the key's actions. After a failure, the batch is decided
    again from the copy, action by action."""
    copies = []
    copy = Dimension.copy
    monkeypatch.setattr(Dimension, "copy", lambda d: copies.append(1) or copy(d))
    config = WEBHOOK | {"count": 2, "converge_func": "skip_when_exceed"}
    batch = [planned(at(k, push(k, converge_config=config))[1]) for k in (1, 2, 3, 4, 5)]
    logic = DimensionLogic(None, DEFAULT, Wall(T0))
    logic.on_batch(batch[:3])
    assert len(copies) == 1
    broken = batch[4]._replace(plan=replace(batch[4].plan, config="not a config"))
    out, _ = logic.on_batch([batch[3], broken])
    assert len(copies) == 1 + 1 + 2
    assert [type(o).__name__ for o in out] == ["Decision", "Rejection"]


def test_within_a_batch_a_key_left_idle_starts_afresh_as_a_discarded_key_would():
    """An unconverged action leaves its key idle; the same message again is decided again
    (same decision id, which Redis and the decision's readers take once)."""
    unconverged = planned(at(0, push(5, converge_config=None))[1])
    logic = DimensionLogic(None, DEFAULT, Wall(T0))
    out, keep = logic.on_batch([unconverged, unconverged])
    assert [(d.id, d.decision) for d in out] == [("5.1", "execute")] * 2
    assert keep == logic.DISCARD


def test_keyed_state_keeps_the_step_ids_of_op_stateful():
    """Recovery stores key state by step id: the flow's state from before per-batch keys
    resumes."""

    def step_ids(make) -> set[str]:
        flow = Dataflow("ids")
        make(op.key_on("key", op.input("in", flow, TestingSource([1])), str))
        found, steps = set(), list(flow.substeps)
        while steps:
            step = steps.pop()
            found.add(step.step_id)
            steps += step.substeps
        return found

    assert step_ids(lambda up: keyed_state("converge", up, BusinessLogic)) == step_ids(
        lambda up: op.stateful("converge", up, BusinessLogic)
    )
