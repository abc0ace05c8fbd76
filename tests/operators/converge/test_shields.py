"""Shields (bkmonitor's ``converge/shield/manager.ShieldManager.shield`` and the shielders of
``shield/shielder/saas_config.py``), in the engine and in the shield table."""

from __future__ import annotations

import pytest

from operators.converge.engine import Runtime
from operators.converge.shields import ShieldError, shield_table
from tests.operators.converge.timeline import T0, WEBHOOK, at, push, scenario

EXCEED2 = {**WEBHOOK, "converge_func": "skip_when_exceed", "count": 2}
ALERT = {"id": "a1", "strategy_id": 1, "severity": 1, "dimensions": [{"key": "ip", "value": "1"}]}


def shields(*configs, **table) -> Runtime:
    return Runtime(shields=shield_table({"shields": list(configs), **table}, {1: {"id": 1}}))


def config(**fields):
    return {"id": 7, "bk_biz_id": 2, "begin_time": T0, "end_time": T0 + 100, **fields}


def test_the_global_shield_shields_every_action_but_parents():
    """``GlobalShielder`` first; ``run_converge`` shields non-parent actions only."""
    runtime = shields(global_shield_enabled=True)
    timeline, decisions = scenario(
        at(0, push(1)), at(1, push(2, is_parent_action=True)), until=10, runtime=runtime
    )
    assert timeline == [(0, 1, "shield"), (1, 2, "execute")]
    assert decisions[0].reason == "global shield is on"


@pytest.mark.parametrize(
    ("dimension_config", "shielded"),
    [
        ({"strategy_id": [1]}, True),
        ({"strategy_id": [2]}, False),
        ({"ip": ["1", "2"], "level": [1]}, True),
        ({"ip": ["2"]}, False),
        ({"ip": "00"}, True),  # _clean_dimension drops values containing "00"
        ({"_hidden": ["x"], "strategy_id": [1]}, True),  # and keys starting with "_"
        ({"category": "all", "strategy_id": [1]}, True),
        ({"missing": ["1"]}, False),  # SimpleCondition: a missing key does not match
        ({"dimension_conditions": [{"key": "ip", "method": "neq", "value": ["1"]}]}, False),
        (
            {
                "dimension_conditions": [
                    {"key": "ip", "method": "eq", "value": ["9"]},
                    {"key": "ip", "method": "eq", "value": ["1"], "condition": "or"},
                ]
            },
            True,
        ),
    ],
)
def test_a_shield_config_matches_the_alert_dimensions(dimension_config, shielded):
    runtime = shields(config(dimension_config=dimension_config))
    timeline, decisions = scenario(at(5, push(1, alerts=[ALERT])), until=10, runtime=runtime)
    assert timeline == [(5, 1, "shield" if shielded else "execute")]
    if shielded:
        assert decisions[0].reason == "alert a1 matches shield 7"


@pytest.mark.parametrize(("t", "shielded"), [(0, True), (100, True), (101, False)])
def test_a_shield_config_holds_within_its_time_range(t, shielded):
    runtime = shields(config(dimension_config={"strategy_id": [1]}))
    timeline, _ = scenario(at(t, push(1, alerts=[ALERT])), until=t + 1, runtime=runtime)
    assert timeline == [(t, 1, "shield" if shielded else "execute")]


def test_a_shielded_action_counts_inside_a_converge():
    """Shielded by a config at 0 (indexed first), the action still counts: action 2 matches
    two actions (count 2) and opens the converge, relating the shielded one as executed;
    action 3 then sees two executed relations: skipped."""
    runtime = shields(config(end_time=T0, dimension_config={"strategy_id": [1]}))
    events = [at(t, push(t + 1, converge_config=EXCEED2, alerts=[ALERT])) for t in range(3)]
    timeline, decisions = scenario(*events, until=10, runtime=runtime)
    assert timeline == [(0, 1, "shield"), (1, 2, "execute"), (2, 3, "skipped")]
    assert decisions[1].opened


def test_a_missing_strategy_skips_the_action_when_its_business_has_shields():
    """``AlertShieldObj._calculate_alert_dimension`` raises ``StrategyNotFound`` when neither
    the strategy cache nor the alert's snapshot has the strategy; ``converge_alarm`` then
    skips the action. Without shield configs for the business nothing reads the strategy."""
    unknown = {**ALERT, "strategy_id": 5}
    runtime = shields(config(bk_biz_id=2, dimension_config={"ip": ["9"]}))
    timeline, decisions = scenario(
        at(0, push(1, alerts=[unknown])),
        at(1, push(2, alerts=[{**unknown, "strategy": {"id": 5}}])),
        at(2, push(3, alerts=[unknown], bk_biz_id=3)),
        until=10,
        runtime=runtime,
    )
    assert timeline == [(0, 1, "skipped"), (1, 2, "execute"), (2, 3, "execute")]
    assert decisions[0].reason == "strategy 5 deleted or disabled"


@pytest.mark.parametrize(
    ("time_range", "t", "shielded"),
    [
        ("00:00:00--23:59:59", 0, False),
        ("01:00:00--02:00:00", 0, True),  # T0 is 22:14:00 UTC
        ("22:00:00--23:00:00", 0, False),
        ("22:14:01--23:00:00", 0, True),
        ("22:14:01--23:00:00", 1, False),
        ("23:00:00--22:00:00", 0, True),  # across midnight, 22:14 is outside
        ("22:10:00--01:00:00", 0, False),
    ],
)
def test_notice_time_range_in_the_business_time_zone(time_range, t, shielded):
    """``AlarmTimeShielder.is_alarm_time`` on ``inputs.time_range``."""
    timeline, _ = scenario(at(t, push(1, time_range=time_range)), until=t + 1, runtime=shields())
    assert timeline == [(t, 1, "shield" if shielded else "execute")]


def test_time_zone_moves_the_time_of_day():
    """T0 is 06:14 in Asia/Shanghai (UTC+8)."""
    runtime = shields(timezones={"2": "Asia/Shanghai"})
    timeline, _ = scenario(
        at(0, push(1, time_range="06:00:00--07:00:00")), until=1, runtime=runtime
    )
    assert timeline == [(0, 1, "execute")]


@pytest.mark.parametrize(
    ("ranges", "shielded"),
    [([{"start": "22:00", "end": "23:00"}], False), ([{"start": "08:00", "end": "20:00"}], True)],
)
def test_strategy_uptime(ranges, shielded):
    """``AlarmTimeShielder.is_strategy_uptime``: ``Strategy.in_alarm_time`` on the first
    trigger config's ``uptime.time_ranges``."""
    strategy = {"id": 1, "detects": [{"trigger_config": {"uptime": {"time_ranges": ranges}}}]}
    runtime = Runtime(shields=shield_table({}, {1: strategy}))
    timeline, _ = scenario(at(0, push(1)), until=1, runtime=runtime)
    assert timeline == [(0, 1, "shield" if shielded else "execute")]


@pytest.mark.parametrize(
    "raw",
    [
        [],
        {"shields": [1]},
        {"shields": [config(cycle_config={"type": 2})]},
        {"shields": [config(cycle_config={"type": "x"})]},
        {"shields": [config(cycle_config={"type": None})]},
        {"shields": [config(cycle_config={"type": [1]})]},
        {"shields": 5},
        {"shields": {"id": 7}},
        {"shields": [{"id": 1}]},
        {"shields": [config(dimension_config=[1])]},
        {"shields": [config(dimension_config={"dimension_conditions": [{"method": "reg"}]})]},
        {"timezones": {"2": "Mars/Base"}},
    ],
)
def test_invalid_shield_tables_are_refused(raw):
    with pytest.raises(ShieldError):
        shield_table(raw)


@pytest.mark.parametrize("cycle", [None, {}, {"type": 1}, {"type": "1"}])
def test_single_time_ranges_are_read(cycle):
    table = shield_table({"shields": [config(cycle_config=cycle)]})
    assert [c.id for c in table.configs[2]] == ["7"]
