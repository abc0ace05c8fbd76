"""Strategy parsing: good files load, bad ones name the strategy and the field."""

from __future__ import annotations

import orjson
import pytest

from alarmflow.config import BUNDLED_STRATEGIES
from operators.strategy import StrategyError, load_strategy_file, parse_strategies


def strategy(**fields) -> dict:
    base = {"id": 1, "bk_biz_id": 2, "items": [{"id": 10, "query_configs": [{"alert_name": "x"}]}]}
    return {**base, **fields}


def test_bundled_strategies_load():
    strategies = load_strategy_file(BUNDLED_STRATEGIES)
    assert [s.id for s in strategies] == [101, 102, 103, 201, *range(301, 314), *range(401, 406)]
    assert strategies[0].source() == ("bk_fta", "alert")
    assert strategies[4].source() == ("bk_monitor", "event")


def test_item_metric_ids_level_target_and_strategy_numbers():
    [parsed] = parse_strategies(
        [
            strategy(
                priority=5,
                update_time="1714000000",
                items=[
                    {
                        "id": 10,
                        "query_configs": [{"metric_id": "bk_monitor.ping-gse"}, {}],
                        "algorithms": [{"level": "1"}],
                        "target": [[{"field": "ip", "method": "eq", "value": []}]],
                    }
                ],
            )
        ]
    )
    item = parsed.items[0]
    assert (item.metric_ids(), item.level(), len(item.target)) == (("bk_monitor.ping-gse",), 1, 1)
    assert (parsed.number("priority"), parsed.number("update_time")) == (5, 1714000000)
    assert (parse_strategies([strategy()])[0].items[0].level(), parsed.number("name")) == (0, 0)


@pytest.mark.parametrize(
    ("objs", "message"),
    [
        ([strategy(id=None)], "'id' must be a non-negative integer"),
        ([strategy(items=[])], "strategy 1: 'items' must be a non-empty list"),
        ([strategy(items=[{"id": "x"}])], "strategy 1: 'id' must be a non-negative integer"),
        ([strategy(items=[{"id": 3, "query_configs": "x"}])], "'query_configs' must be a list"),
        ([strategy(bk_biz_id=True)], "strategy 1: 'bk_biz_id'"),
        ([strategy(), strategy()], "strategy 1 is defined twice"),
        (["not an object"], "strategy must be an object"),
    ],
)
def test_bad_strategies_are_named(objs, message):
    with pytest.raises(StrategyError, match=message):
        parse_strategies(objs)


def item(**fields) -> dict:
    """A strategy whose one item has ``fields`` beside its id, its query config's fields taken
    from ``query``."""
    query = {"alert_name": "x", **fields.pop("query", {})}
    return strategy(id=7, items=[{"id": 70, "query_configs": [query], **fields}])


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        (item(query={"agg_condition": "abc"}), "'agg_condition' must be a list of objects"),
        (item(query={"agg_condition": [1]}), "'agg_condition' must be a list of objects"),
        (item(query={"alert_name": ["x"]}), "'alert_name' must be a string"),
        (item(query={"data_source_label": ["bk_monitor"]}), "'data_source_label' must be a str"),
        (item(query={"data_type_label": 5}), "'data_type_label' must be a string"),
        (item(query={"agg_interval": "1m"}), "'agg_interval' must be a non-negative integer"),
        (item(query={"agg_interval": [60]}), "'agg_interval' must be a non-negative integer"),
        (item(query={"agg_dimension": 5}), "'agg_dimension' must be a list of strings"),
        (item(query={"agg_dimension": [["ip"]]}), "'agg_dimension' must be a list of strings"),
        (item(algorithms="abc"), "'algorithms' must be a list of objects"),
        (item(algorithms=[1]), "'algorithms' must be a list of objects"),
        (item(target=[5]), "'target' must be a list of condition groups"),
        (item(target={"field": "ip"}), "'target' must be a list of condition groups"),
        (item(no_data_config=[1]), "'no_data_config' must be an object"),
        (item(algorithms=[{"level": "x"}]), "'level' must be a non-negative integer"),
        ({**item(), "priority": "high"}, "'priority' must be a non-negative integer"),
        ({**item(), "notice": [1]}, "'notice' must be an object"),
        ({**item(), "notice": {"options": 1}}, "'notice.options' must be an object"),
        (
            {**item(), "notice": {"options": {"noise_reduce_config": "on"}}},
            "'notice.options.noise_reduce_config' must be an object",
        ),
    ],
)
def test_fields_the_flows_read_of_a_wrong_type_are_named(obj, message):
    with pytest.raises(StrategyError, match=f"strategy 7: {message}"):
        parse_strategies([obj])


@pytest.mark.parametrize(
    "fields",
    [
        {"query": {"agg_interval": 60, "agg_dimension": ["ip"], "agg_condition": []}},
        {"query": {"agg_interval": "60", "data_source_label": "bk_monitor"}},
        {"query": {"agg_interval": None, "agg_condition": None, "alert_name": None}},
        {"query": {"agg_interval": ""}, "algorithms": None, "target": None},
        {"target": [[]], "algorithms": [{"type": "Threshold", "level": 1}]},
        {"target": [[{"field": "ip", "method": "eq", "value": ["10.0.0.8"]}]]},
        {"no_data_config": {"is_enabled": True, "continuous": 5}, "algorithms": [{"level": "2"}]},
        {"no_data_config": None, "algorithms": [{"level": None}]},
    ],
)
def test_fields_in_the_shapes_bkmonitor_gives_load(fields):
    assert parse_strategies([item(**fields)])[0].id == 7


@pytest.mark.parametrize(
    ("content", "message"), [("{not json", "cannot read"), ('{"a": 1}', "JSON list")]
)
def test_bad_files_are_named(tmp_path, content, message):
    path = tmp_path / "s.json"
    path.write_text(content)
    with pytest.raises(StrategyError, match=message):
        load_strategy_file(path)


def test_the_snapshot_is_the_raw_strategy_as_json_made_once():
    [parsed] = parse_strategies([strategy(update_time=1714000000)])
    assert orjson.loads(parsed.snapshot) == strategy(update_time=1714000000)
    assert parsed.snapshot is parsed.snapshot
