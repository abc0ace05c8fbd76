"""What both time-series flows share: each item's range matcher, and the items a record keeps."""

from __future__ import annotations

from alarmflow.config import BUNDLED_STRATEGIES
from flows.points import item_matchers, retaining
from operators.strategy import load_strategy_file
from operators.strategy_group import real_time_groups

STRATEGIES = {s.id: s for s in load_strategy_file(BUNDLED_STRATEGIES)}
TABLE = real_time_groups(STRATEGIES.values())
MATCHERS = item_matchers((g for gs in TABLE.values() for g in gs), STRATEGIES)


def kept(rt: str, biz: int, dimensions: dict) -> list[tuple[int, int]]:
    return [
        (sid, it.id) for g in TABLE[(rt, biz)] for sid, it in retaining(g, MATCHERS, dimensions)
    ]


def test_an_item_keeps_a_record_only_when_its_condition_matches():
    assert kept("system.cpu_summary", 3, {"device_name": "cpu-total"}) == [(405, 4050)]
    assert kept("system.cpu_summary", 3, {"device_name": "cpu0"}) == []


def test_an_item_without_target_or_condition_keeps_every_record():
    assert kept("system.cpu_summary", 2, {"bk_target_ip": "10.0.0.1"}) == [(401, 4010)]
