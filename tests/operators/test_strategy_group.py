"""Strategy groups: query_md5, members, intervals, real-time and static-threshold groups."""

from __future__ import annotations

from alarmflow.config import BUNDLED_STRATEGIES
from operators.md5 import count_md5
from operators.strategy import Item, load_strategy_file
from operators.strategy_group import (
    interval_of,
    is_real_time,
    query_md5,
    real_time_groups,
    strategy_groups,
)

STRATEGIES = load_strategy_file(BUNDLED_STRATEGIES)
BY_ID = {s.id: s for s in STRATEGIES}
CONFIG = {
    "data_source_label": "bk_monitor",
    "data_type_label": "time_series",
    "result_table_id": "system.mem",
    "metric_field": "pct_used",
    "agg_method": "AVG",
    "agg_interval": 60,
    "agg_dimension": ["bk_target_ip"],
    "agg_condition": [],
}


def test_query_md5_hashes_the_normalised_single_config():
    expected = count_md5(
        {
            "bk_biz_id": 2,
            "data_source_label": "bk_monitor",
            "data_type_label": "time_series",
            "agg_method": "AVG",
            "agg_interval": 60,
            "agg_dimension": ["bk_target_ip"],
            "agg_condition": [],
            "result_table_id": "system.mem",
            "metric_field": "pct_used",
            "keywords_query_string": None,
        }
    )
    assert query_md5(Item(1, ({**CONFIG, "unit": "percent"},)), 2) == expected


def test_query_md5_uses_the_expression_form_for_several_configs():
    two = Item(1, (CONFIG, {**CONFIG, "metric_field": "free"}))
    assert query_md5(two, 2, "a+b") != query_md5(Item(1, (CONFIG,)), 2)
    assert query_md5(Item(1, ({**CONFIG, "data_type_label": "alert"},)), 2) is None


def test_groups_share_a_query_and_keep_strategy_order():
    groups = strategy_groups(STRATEGIES)
    mem = [g for g in groups.values() if g.query["result_table_id"] == "system.mem"]
    assert len(mem) == 1
    assert [sid for sid, _ in mem[0].items] == [403, 404]
    assert mem[0].interval == 60
    assert not mem[0].is_static_threshold
    static = {sid for g in groups.values() if g.is_static_threshold for sid, _ in g.items}
    assert static == {201, 402}


def test_real_time_groups_hold_only_real_time_strategies():
    assert is_real_time(BY_ID[401]) and not is_real_time(BY_ID[402])
    groups = real_time_groups(STRATEGIES)
    assert sorted([sid for sid, _ in g.items] for g in groups.values()) == [[401], [405]]


def test_interval_defaults_to_60():
    assert interval_of(Item(1, ({"agg_interval": 300}, {"agg_interval": 120}))) == 120
    assert interval_of(Item(1, ({},))) == 60
