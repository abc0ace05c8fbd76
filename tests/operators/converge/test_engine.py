"""Converge scenarios on a virtual clock, Alertmanager style.

Expected values are derived by hand from bkmonitor's code: ``converge/processor.py``
(``run_converge``, ``is_sleep_timeout``, ``need_get_lock``, ``get_dimension_lock``),
``converge/converge_manger.py`` (``do_converge``, ``get_related_ids``, ``connect_converge``),
``converge/converge_func.py`` (the functions), ``fta_action/utils.py``
(``push_actions_to_converge_queue``: index, then converge) and ``fta_action/collect/
processor.py`` with ``models/fta/action.py`` (``converged_actions``: the summary).
"""

from __future__ import annotations

import pickle
import random
from dataclasses import fields

import pytest

from operators.converge.driver import Converger
from operators.converge.engine import Dimension, Queued, Runtime
from operators.converge.plan import plan
from operators.converge.records import EXECUTED, PRIMARY, SKIPPED, Converge
from tests.operators.converge.timeline import WEBHOOK, at, between, push, scenario, status

EXCEED3 = {**WEBHOOK, "converge_func": "skip_when_exceed", "count": 3}
EXCEED1_60S = {**WEBHOOK, "converge_func": "skip_when_exceed", "timedelta": 60}
NOTICE = {"is_enabled": True, "converge_func": "collect", "timedelta": 60, "count": 1}


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
    """Busy for the first ``busy`` acquisitions (always, with ``busy=-1``); counts holders."""

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


# Each function with count 3 (window 60 s): actions at 0 and 1 are below the count
# (``do_converge``: matched 2 < 3), the third opens the converge (is_new; ``connect_converge``
# relates 1 and 2 as executed: their status ``converged`` is not received/sleep/waiting), the
# fourth is the function on a converge with 3 executed relations. At 62 the converge is still
# open (opened at 2, ``get_converge_instance`` ends it once ``create_time < start_time``,
# 2 < 62 - 60 is false), unless a summary ended it at 2 + 60 (``collect/processor.collect``
# calls ``end_converge_by_id``); at 63 it is ended and only 2 actions match: execute.
THRESHOLDS = {
    # function: (opener, fourth, at 62)
    "skip_when_success": ("execute", "sleep", "sleep"),  # running is neither success nor failure
    "approve_when_failed": ("waiting", "sleep", "sleep"),  # the opener has nothing executed yet
    "skip_when_proceed": ("execute", "skipped", "skipped"),
    "wait_when_proceed": ("execute", "sleep", "sleep"),
    "defense": ("execute", "waiting", "waiting"),
    "skip_when_exceed": ("execute", "skipped", "skipped"),
    "collect": ("execute", "skipped", "execute"),
    "collect_alarm": ("skipped", "skipped", "execute"),
    "trigger": ("execute", "skipped", "skipped"),
    "relevance": ("execute", "execute", "execute"),
}


def first_decisions(timeline) -> dict[int, str]:
    found: dict[int, str] = {}
    for _, ref, kind in timeline:
        if isinstance(ref, int):
            found.setdefault(ref, kind)
    return found


@pytest.mark.parametrize(("func", "expected"), THRESHOLDS.items())
@pytest.mark.parametrize("last", [62, 63])
def test_each_function_at_its_threshold_and_one_step_outside_the_window(func, expected, last):
    config = {**WEBHOOK, "converge_func": func, "count": 3, "timedelta": 60}
    events = [at(t, push(t + 1, converge_config=config)) for t in range(4)]
    timeline, decisions = scenario(*events, at(last, push(9, converge_config=config)), until=2000)
    opener, fourth, inside = expected
    firsts = first_decisions(timeline)
    assert [firsts[1], firsts[2], firsts[3], firsts[4]] == ["execute", "execute", opener, fourth]
    assert firsts[9] == (inside if last == 62 else "execute")
    by_id = {d.id: d for d in decisions}
    assert by_id["1.1"].converge_id == "" and by_id["2.1"].converge_id == ""
    assert by_id["3.1"].opened
    still_open = last == 62 and func not in ("collect", "collect_alarm")
    assert by_id["9.1"].converge_id == (by_id["3.1"].converge_id if still_open else "")


@pytest.mark.parametrize(("third", "opens"), [(60, True), (61, False)])
def test_counting_window_edge(third, opens):
    """``get_related_ids``: ZRANGEBYSCORE over [create_time - 60, create_time + 60]."""
    config = {**WEBHOOK, "converge_func": "skip_when_exceed", "count": 3, "timedelta": 60}
    _, decisions = scenario(
        *(at(t, push(n, converge_config=config)) for n, t in ((1, 0), (2, 1), (3, third))),
        until=200,
    )
    assert decisions[2].opened is opens


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
    assert (summary.time - decisions[0].time, summary.decision) == (60, "collect")
    assert summary.skipped == (2, 3, 4)
    assert summary.alert_ids == ("alert2", "alert3", "alert4")
    assert timeline[5] == (70, 5, "execute")
    assert len(timeline) == 6, "the second converge skipped nothing: no summary"


def test_collect_alarm_summary_lists_its_opener_and_a_lone_opener_gets_one():
    """``converge_func.collect_alarm`` skips the opener and relates it (primary); the summary
    lists every related action whose status is skipped (``converged_actions().filter(
    status=SKIPPED)``), so a lone opener is summarised alone (collect_type ``action``)."""
    config = {**WEBHOOK, "converge_func": "collect_alarm", "count": 1, "timedelta": 60}
    timeline, decisions = scenario(
        at(0, push(1, converge_config=config)),
        at(5, push(2, converge_config=config)),
        at(200, push(3, converge_config=config)),
        until=600,
    )
    assert timeline == [
        (0, 1, "skipped"),
        (5, 2, "skipped"),
        (60, "collect." + decisions[0].converge_id, "collect"),
        (200, 3, "skipped"),
        (260, "collect." + decisions[3].converge_id, "collect"),
    ]
    assert decisions[2].skipped == (1, 2) and decisions[2].alert_ids == ("alert1", "alert2")
    assert decisions[4].skipped == (3,) and decisions[4].alert_ids == ("alert3",)


def test_approve_when_failed_opener_waits_and_followers_wait_for_its_outcome():
    """``approve_when_failed`` runs before ``connect_converge``: the opener has no executed
    relation, ``skip_when_success`` is False, so it is ``waiting``. A follower sees the
    waiting opener (not success, not failure/sleep): sleep; after the opener failed: waiting,
    related as skipped (a truthy status), so a third still sees only the failed opener."""
    config = {**WEBHOOK, "converge_func": "approve_when_failed"}
    timeline, _ = scenario(
        at(0, push(1, converge_config=config)),
        at(10, push(2, converge_config=config)),
        at(20, status(1, "failure", converge_config=config)),
        at(50, push(3, converge_config=config)),
        until=100,
    )
    assert timeline == [(0, 1, "waiting"), (10, 2, "sleep"), (40, 2, "waiting"), (50, 3, "waiting")]


@pytest.mark.parametrize(
    ("max_timedelta", "last_sleep", "skipped_at"), [(0, 130, 160), (600, 610, 640)]
)
def test_sleep_timeout_is_max_of_timeout_and_max_timedelta_not_the_window(
    max_timedelta, last_sleep, skipped_at
):
    """``is_sleep_timeout``: ``create_time + max(timeout, max_timedelta // 60 * 60) < now``;
    a one-hour ``timedelta`` does not enter it. Timeout 120 s: at 130 (10 + 120 = 130, not
    below) the action sleeps again, at 160 it is skipped."""
    config = {**WEBHOOK, "timedelta": 3600, "max_timedelta": max_timedelta}
    timeline, decisions = scenario(
        at(0, push(1, converge_config=config)),
        at(10, push(2, converge_config=config, timeout=120)),
        until=3000,
    )
    sleeps = [t for t, ref, kind in timeline if kind == "sleep"]
    assert sleeps == list(range(10, last_sleep + 1, 30))
    assert timeline[-1] == (skipped_at, 2, "skipped")
    assert "sleep timed out" in decisions[-1].reason


def test_a_shielded_action_counts_toward_the_threshold_and_is_related_as_executed():
    """``push_actions_to_converge_queue`` indexes the action before ``run_converge`` shields
    it, so it matches (``get_related_ids``) and, status ``shield``, is related as executed
    when action 3 opens the converge (matched 1, 2, 3 >= count 3); action 4 then sees three
    executed relations: skipped."""
    shielded = [{"id": "a1", "is_shielded": True}]
    events = [at(0, push(1, converge_config=EXCEED3, alerts=shielded))]
    events += [at(t, push(t + 1, converge_config=EXCEED3)) for t in (1, 2, 3, 4)]
    converger = Converger()
    made = [d for _, action in events for d in converger.push(action)]
    assert [d.decision for d in made] == ["shield", "execute", "execute", "skipped", "skipped"]
    assert made[2].opened
    [dimension] = converger.dimensions.values()
    assert dimension.converge.relations == {
        1: EXECUTED,
        2: EXECUTED,
        3: PRIMARY,
        4: SKIPPED,
        5: SKIPPED,
    }


def test_a_shielded_alert_and_a_parent_action():
    shielded = [{"id": "a9", "is_shielded": True, "shield_id": 12}]
    timeline, decisions = scenario(
        at(0, push(1, alerts=shielded)),
        at(1, push(2, alerts=shielded, is_parent_action=True)),
        until=100,
    )
    assert timeline == [(0, 1, "shield"), (1, 2, "execute")]
    assert decisions[0].reason == "alert a9 is shielded by shield 12"
    assert decisions[1].reason == "parent actions are not converged"


def test_a_lock_held_elsewhere_makes_the_action_wait_then_converge_without_timing_out():
    """A busy lock raises before any status change and re-queues the action 3 s later
    (``get_dimension_lock``); the sleep timeout applies only to status ``sleep``, so the
    action waits past its 10 s timeout until the lock is free, then converges. Busy for 20
    attempts: 10 each (0, 3, ... 27 and 1, 4, ... 28)."""
    lock = BusyLock(busy=20)
    timeline, decisions = scenario(
        at(0, push(1, timeout=10)), at(1, push(2, timeout=10)), until=200, runtime=Runtime(lock)
    )
    assert timeline[:2] == [(30, 1, "execute"), (31, 2, "sleep")]
    assert decisions[0].opened
    assert lock.held == 0


def test_at_end_of_input_requeued_actions_converge_as_when_the_lock_frees():
    """The other holder's lock expires (60 s TTL) at the latest; the queued actions are then
    decided as bkmonitor decides them once the lock frees. All four were indexed at first sight
    (``push_actions_to_converge_queue``), and their retries are due at 4 (action 2), 5 (3),
    6 (1, re-queued again at 3) and 6 (4). Action 2 matches all four (>= count 2): it opens
    the converge and executes (``skip_when_exceed``, is_new); nobody else is related (all
    ``received``). Action 3 sees one executed relation (< 2): execute. Actions 1 and 4 see
    two: skipped."""
    config = EXCEED1_60S | {"count": 2}
    events = [at(t, push(t + 1, converge_config=config)) for t in range(4)]
    busy = Converger(Runtime(BusyLock(busy=-1)))
    assert [d for _, a in events for d in busy.push(a)] == []
    got = busy.flush()
    assert [(d.action_id, d.decision, d.time - events[0][1].create_time) for d in got] == [
        (2, "execute", 4),
        (3, "execute", 5),
        (1, "skipped", 6),
        (4, "skipped", 6),
    ]
    assert got[0].opened and {d.converge_id for d in got} == {got[0].converge_id}


def test_no_lock_is_taken_once_the_converge_is_full():
    """``need_get_lock``: count 1 and a converge exists: no lock."""
    lock = BusyLock(busy=0)
    converger = Converger(Runtime(lock))
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
    converger = Converger()
    for t, make in ((0, push(1)), (10, push(2)), (20, status(1, "failure"))):
        converger.push(at(t, make)[1])
    decisions = converger.push(at(50, push(3))[1])
    assert [d.decision for d in decisions] == ["execute", "sleep"]
    [dimension] = converger.dimensions.values()
    assert dimension.converge.relations == {1: PRIMARY, 2: EXECUTED}


def test_unconverged_and_finished_actions():
    timeline, decisions = scenario(
        at(0, push(1, converge_config=None)), at(1, push(2, status="success")), until=10
    )
    assert timeline == [(0, 1, "execute")]
    assert decisions[0].reason == "no converge_config"
    assert plan(at(0, push(1, converge_config=None))[1]).dimension == "!none#1"


def test_a_config_without_is_enabled_is_not_converged():
    """``ConvergeProcessor.__init__``: ``converge_config.get("is_enabled", False) is False``."""
    config = {k: v for k, v in WEBHOOK.items() if k != "is_enabled"}
    timeline, decisions = scenario(
        at(0, push(1, converge_config=config)), at(1, push(2, converge_config=config)), until=10
    )
    assert timeline == [(0, 1, "execute"), (1, 2, "execute")]
    assert decisions[0].reason == "converge_config is not enabled"


def test_a_quiet_dimension_expires_after_the_index_ttl_or_its_window():
    dimension = Dimension()
    assert dimension.expires_at() is None
    one, two = at(0, push(1))[1], at(10, push(2))[1]
    dimension.push(one, plan(one))
    dimension.push(two, plan(two))
    assert dimension.expires_at() is None, "a sleeping action keeps it alive"
    done = at(20, status(1, "success"))[1]
    dimension.push(done, plan(done))
    dimension.advance(two.create_time + 100)
    assert dimension.expires_at() == two.create_time + 3600, "the window is the longer"


def test_copy_is_independent():
    dimension = Dimension()
    one = at(0, push(1))[1]
    dimension.push(one, plan(one))
    before = dimension.copy()
    two = at(1, push(2))[1]
    dimension.push(two, plan(two))
    assert 2 not in before.index and 2 not in before.converge.relations
    assert before.timers == []


def test_copy_has_every_field_and_shares_no_container():
    """``copy`` names the fields one by one (faster than ``dataclasses.replace``): a field it
    left out would be lost on the first rollback."""
    dimension = Dimension()
    for action in (at(0, push(1))[1], at(10, push(2))[1]):
        dimension.push(action, plan(action))
    dimension.ended.add(7)
    dimension.held[1] = None
    dimension.collecting["c"] = dimension.converge.copy()
    copied = dimension.copy()
    assert copied == dimension
    for name in (f.name for f in fields(Dimension)):
        value = getattr(dimension, name)
        assert value, f"the test fills {name}"
        if isinstance(value, dict | set | list | Converge):
            assert getattr(copied, name) is not value, name


def forgotten_by_bkmonitor(index: dict[int, float], queued: set[int], now: float) -> set[int]:
    """``DimensionCalculator``'s ZREMRANGEBYSCORE of the entries more than the index TTL
    (1,800 s) older than ``now``; an action waiting for a retry keeps its entry."""
    return {a for a, t in index.items() if t < now - 1800 and a not in queued}


def test_the_index_forgets_what_bkmonitor_trims_whatever_the_order_of_actions():
    """Random create times, in and out of order, some actions queued and later taken off the
    queue: after each action the index holds what bkmonitor's trim leaves."""
    rng = random.Random(13)
    for _ in range(200):
        dimension = Dimension()
        actions = {}
        for action_id in range(1, 40):
            t = rng.uniform(0, 6000)
            if rng.random() < 0.1 and dimension.index:
                waiting = actions[rng.choice(list(dimension.index))]
                dimension.queued[waiting.id] = Queued(waiting, plan(waiting))
            if rng.random() < 0.1 and dimension.queued:
                dimension._unqueue(rng.choice(list(dimension.queued)))
            action = actions[action_id] = at(t, push(action_id))[1]
            kept = {**dimension.index, action_id: action.create_time}
            now = action.create_time
            expected = set(kept) - forgotten_by_bkmonitor(kept, set(dimension.queued), now)
            dimension._index(action)
            assert set(dimension.index) == expected
            assert dimension.newest == max(dimension.index.values())


@pytest.mark.parametrize(
    "missing",
    [("by_time", "held", "newest", "executing"), ("newest",)],
    ids=["before the index heap", "before newest"],
)
def test_a_dimension_pickled_by_an_earlier_version_decides_as_one_never_pickled(missing):
    """A recovery store written before the index heap, the held entries and the converge's
    executing actions existed holds dimensions without them, their timers in no order; one
    written before ``newest`` existed, dimensions without it: unpickled, such a dimension gets
    them and decides (and expires) as the dimension never pickled does (a
    ``skip_when_success`` dimension busy for longer than the index TTL, its sleepers retrying,
    then the executed action's success)."""
    actions = [at(7 * n, push(n, timeout=7200))[1] for n in range(1, 400)]
    actions.insert(350, at(7 * 350 + 3, status(1, "success"))[1])
    kept = Dimension()
    for action in actions[:300]:
        kept.push(action, plan(action))
    earlier = kept.copy()
    for name in missing:
        delattr(earlier.converge if name == "executing" else earlier, name)
    if "by_time" in missing:
        earlier.timers.reverse()
    assert kept.held and len(kept.timers) > 1, "the test keeps expired sleepers and timers"

    resumed = pickle.loads(pickle.dumps(earlier))

    assert resumed.newest == kept.newest
    for action in actions[300:]:
        assert resumed.push(action, plan(action)) == kept.push(action, plan(action))
        assert resumed.expires_at() == kept.expires_at()
    assert resumed.flush() == kept.flush()
