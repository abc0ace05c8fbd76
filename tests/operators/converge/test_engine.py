"""Converge scenarios on a virtual clock (bkmonitor.md §5.4-§5.6), Alertmanager style."""

from __future__ import annotations

from operators.converge.driver import Converger
from operators.converge.engine import decide, fire_due, plan
from operators.converge.state import EXECUTED, DimensionState
from tests.operators.converge.timeline import WEBHOOK, at, between, push, scenario, status

EXCEED3 = {**WEBHOOK, "converge_func": "skip_when_exceed", "count": 3}
EXCEED1_60S = {**WEBHOOK, "converge_func": "skip_when_exceed", "timedelta": 60}
NOTICE = {"converge_func": "collect", "timedelta": 60, "count": 1}


def notice(action_id: int, **fields):
    return push(
        action_id,
        plugin_type="notice",
        notice_way="mail",
        notice_receiver=["bob"],
        converge_config=NOTICE,
        **fields,
    )


class BusyLock:
    """Busy for the first ``busy`` acquisitions; counts acquisitions and releases."""

    def __init__(self, busy: int) -> None:
        self.busy = busy
        self.held = 0

    def acquire(self, dimension: str, parallel: int) -> bool:
        if self.busy:
            self.busy -= 1
            return False
        self.held += 1
        return True

    def release(self, dimension: str) -> None:
        self.held -= 1


def test_first_match_executes_then_waits_for_success_and_skips():
    timeline, decisions = scenario(
        at(0, push(1)), at(10, push(2)), at(20, status(1, "success")), until=100
    )
    assert timeline == [(0, 1, "execute"), (10, 2, "sleep"), (40, 2, "skipped")]
    assert [d.id for d in decisions] == ["1.1", "2.1", "2.2"]
    assert decisions[0].opened and decisions[0].converge_id == decisions[2].converge_id


def test_a_failed_first_run_lets_the_sleeper_execute():
    timeline, _ = scenario(at(0, push(1)), at(10, push(2)), at(20, status(1, "failure")), until=100)
    assert between(timeline, 30, 100) == [(2, "execute")]


def test_count_reached_opens_the_converge_on_the_third_and_skips_the_fourth():
    timeline, decisions = scenario(
        *(at(t, push(t + 1, converge_config=EXCEED3)) for t in range(4)), until=10
    )
    assert timeline == [(0, 1, "execute"), (1, 2, "execute"), (2, 3, "execute"), (3, 4, "skipped")]
    assert [d.converge_id != "" for d in decisions] == [False, False, True, True]
    assert "below count 3" in decisions[0].reason


def test_window_closes_lazily_and_a_new_converge_opens():
    timeline, decisions = scenario(
        at(0, push(1, converge_config=EXCEED1_60S)),
        at(30, push(2, converge_config=EXCEED1_60S)),
        at(100, push(3, converge_config=EXCEED1_60S)),
        until=200,
    )
    assert timeline == [(0, 1, "execute"), (30, 2, "skipped"), (100, 3, "execute")]
    assert decisions[2].opened and decisions[2].converge_id != decisions[0].converge_id


def test_collect_summarises_the_skipped_notices_60s_after_the_converge_opened():
    timeline, decisions = scenario(
        *(at(t, notice(t // 5 + 1)) for t in (0, 5, 10, 15)), at(70, notice(5)), until=300
    )
    assert [kind for _, _, kind in timeline[:4]] == ["execute"] + ["skipped"] * 3
    summary = decisions[4]
    assert (summary.time, summary.decision, summary.skipped) == (60, "collect", (2, 3, 4))
    assert summary.alert_ids == ("alert2", "alert3", "alert4")
    assert timeline[5] == (70, 5, "execute")
    assert len(timeline) == 6, "the second converge skipped nothing: no summary"


def test_sleep_retries_every_30s_until_the_sleep_timeout():
    config = {**WEBHOOK, "timedelta": 60}
    timeline, _ = scenario(
        at(0, push(1, converge_config=config)), at(10, push(2, converge_config=config)), until=900
    )
    sleeps = [t for t, ref, kind in timeline if kind == "sleep"]
    assert sleeps == list(range(10, 611, 30))
    assert timeline[-1] == (640, 2, "skipped")


def test_busy_lock_requeues_after_3s_without_a_decision():
    lock = BusyLock(busy=2)
    timeline, _ = scenario(at(0, push(1)), until=100, lock=lock)
    assert timeline == [(6, 1, "execute")]
    assert lock.held == 0


def test_no_lock_is_taken_once_the_converge_is_full():
    lock = BusyLock(busy=0)
    converger = Converger(lock)
    converger.push(at(0, push(1))[1])
    lock.busy = 1
    assert [d.decision for d in converger.push(at(1, push(2))[1])] == ["sleep"]


def test_conditions_on_any_dimension_converge():
    """bkmonitor only indexes alert_info/notice_info/action_info, so a strategy_id condition
    never matches there; alarmflow keys by the whole dimension, so it does."""
    config = {**WEBHOOK, "converge_func": "trigger", "condition": [{"dimension": "strategy_id"}]}
    config["condition"][0]["value"] = ["self"]
    timeline, _ = scenario(
        at(0, push(1, converge_config=config)),
        at(1, push(2, converge_config=config, action_config_id=99)),
        until=10,
    )
    assert timeline == [(0, 1, "execute"), (1, 2, "skipped")]


def test_a_slept_action_that_executes_is_related_as_executed():
    """bkmonitor relates a slept action as skipped and never updates the relation."""
    one, two = at(0, push(1))[1], at(10, push(2))[1]
    state = DimensionState()
    decide(state, one, 0)
    decide(state, two, 10)
    decide(state, at(20, status(1, "failure"))[1], 20)
    _, decisions, _ = decide(state, at(50, push(3))[1], 50)
    assert [d.decision for d in decisions] == ["execute", "sleep"]
    assert state.converge.relations == {1: "primary", 2: EXECUTED}


def test_unconverged_and_finished_actions():
    timeline, decisions = scenario(
        at(0, push(1, converge_config=None)), at(1, push(2, status="success")), until=10
    )
    assert timeline == [(0, 1, "execute")]
    assert decisions[0].reason == "no converge_config"
    assert plan(at(0, push(1, converge_config=None))[1]).dimension == "!none#1"


def test_a_quiet_dimension_expires_after_the_index_ttl_or_its_window():
    state = DimensionState()
    assert state.expires_at() is None
    decide(state, at(0, push(1))[1], 0)
    decide(state, at(10, push(2))[1], 10)
    assert state.expires_at() is None, "a sleeping action keeps it alive"
    decide(state, at(20, status(1, "success"))[1], 20)
    fire_due(state, 100)
    assert state.expires_at() == 10 + 3600, "the window (3600 s) is longer than the index TTL"


def test_a_shielded_alert_shields_its_action_first_and_a_parent_is_not_shielded():
    shielded = [{"id": "a9", "is_shielded": True, "shield_id": 12}]
    timeline, decisions = scenario(
        at(0, push(1, alerts=shielded)),
        at(1, push(2)),
        at(2, push(3, alerts=shielded, is_parent_action=True)),
        until=100,
    )
    assert timeline[:2] == [(0, 1, "shield"), (1, 2, "execute")]
    assert decisions[0].reason == "alert a9 is shielded by shield 12"
    assert (3, "shield") not in between(timeline, 0, 100)
