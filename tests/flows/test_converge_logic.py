"""The converge flow's Bytewax logic without a broker: timer clocks and end of input."""

from __future__ import annotations

import time
from dataclasses import replace

from flows.converge import BusinessLogic, DimensionLogic
from operators.converge.context import Action
from operators.converge.engine import NO_LOCK, Plan, plan
from tests.operators.converge.timeline import at, push

OLD = 1_700_000_000.0


def planned(action: Action) -> tuple[None, tuple[Action, Plan]]:
    """The converge step's input: the (absent) source record, the action and its plan."""
    return None, (action, plan(action))


def test_replayed_old_actions_wait_on_the_dimension_clock_not_the_wall_clock():
    logic = DimensionLogic(None, NO_LOCK)
    logic.on_item(planned(at(OLD, push(1))[1]))
    decisions, _ = logic.on_item(planned(at(OLD + 10, push(2))[1]))
    assert [d.decision for d in decisions] == ["sleep"]
    wake = logic.notify_at().timestamp()
    assert 29 < wake - time.time() <= 30, "the retry is 30 s of quiet away, not overdue"
    assert logic.on_notify() == ([], False)
    decisions, discard = logic.on_eof()
    assert [d.decision for d in decisions][-1] == "skipped" and not discard


def test_business_windows_wait_for_summaries_that_arrive_after_end_of_input():
    config = {
        "converge_func": "collect",
        "timedelta": 60,
        "need_biz_converge": True,
        "sub_converge_config": {"converge_func": "collect_alarm"},
    }
    dims = [DimensionLogic(None, NO_LOCK) for _ in range(3)]
    business = BusinessLogic(None)
    for n, logic in enumerate(dims):
        for k in range(2):
            action = at(OLD + n + k, push(10 * n + k, strategy_id=n, converge_config=config))[1]
            for decision in logic.on_item(planned(replace(action, plugin_type="notice")))[0]:
                business.on_item(decision)
    assert business.on_eof() == ([], False)
    out = []
    for logic in dims:
        for decision in logic.on_eof()[0]:
            out += business.on_item(decision)[0]
    assert [d.decision for d in out] == ["suppressed"] * 3 + ["collect"]
