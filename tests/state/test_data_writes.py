"""What the time-series flows write for one record."""

from __future__ import annotations

import orjson

from operators.md5 import count_md5
from operators.records import record_spec
from operators.rejects import SourceRecord
from operators.strategy import parse_strategies
from operators.strategy_group import strategy_groups
from operators.timeseries import GroupPlan, access_record, check_priority
from state.data_writes import (
    Checked,
    anomaly_push,
    checkpoint_writes,
    data_push,
    priority_write,
    record_push,
)
from state.idempotent import Op
from state.keys import Backend

RECORD = {"time": 120, "value": 95.0, "record_id": "abc.120"}


def test_data_push_marks_the_dedup_set_then_lists_then_signals():
    extra = checkpoint_writes("p", "g", 120, 999)
    push = data_push("p", "g", 300, RECORD, [(1, 10), (1, 11), (2, 20)], extra)
    marker = push.marker
    assert (marker.op, marker.key, marker.value, marker.ttl, marker.backend) == (
        Op.SADD,
        "p.access.data.duplicate.strategy_group_g.120",
        "abc.120",
        3000,
        Backend.SERVICE,
    )
    assert [(w.op, w.key) for w in push.writes] == [
        (Op.LPUSH, "p.access.data.1.10"),
        (Op.LPUSH, "p.access.data.1.11"),
        (Op.LPUSH, "p.access.data.2.20"),
        (Op.SET, "p.checkpoint.strategy_group_g"),
        (Op.SET, "p.access.run.strategy_group_g"),
        (Op.SIGNAL, "p.access.data.signal"),
        (Op.SIGNAL, "p.access.data.signal"),
    ]
    assert {w.ttl for w in push.writes[:3]} == {1800}
    assert [w.value for w in push.writes[-2:]] == ["1", "2"]
    assert orjson.loads(push.writes[0].value) == RECORD
    assert push.writes[3].ttl == 3600 and push.writes[4].ttl == 0
    assert data_push("p", "g", 600, RECORD, [(1, 10)]).writes[0].ttl == 3000


def test_anomaly_push_writes_check_results_then_anomalies_then_signals():
    checks = [
        Checked(4, 40, 7, b"{}", (1, 2), (1,), {"anomaly": 1}),
        Checked(5, 50, 7, b"{}", (2,), (), None),
    ]
    push = anomaly_push("p", "g", 60, RECORD, checks)
    ops = [(w.op, w.key, w.param, w.value) for w in push.writes]
    assert ops == [
        (Op.ZADD, "p.detect.result.4.40.abc.1", "120", "120|ANOMALY"),
        (Op.HMAX, "p.detect.last.checkpoint.4.40", "detect.result.abc.1", "120"),
        (Op.HMAX, "p.detect.last.checkpoint.4.40", "detect.result.__ALL__.1", "120"),
        (Op.ZADD, "p.detect.result.4.40.abc.2", "120", "120|95.0"),
        (Op.HMAX, "p.detect.last.checkpoint.4.40", "detect.result.abc.2", "120"),
        (Op.HMAX, "p.detect.last.checkpoint.4.40", "detect.result.__ALL__.2", "120"),
        (Op.SET, "p.cache.strategy.snapshot.4.7", "", b"{}"),
        (Op.LPUSH, "p.detect.anomaly.list.4.40", "", b'{"anomaly":1}'),
        (Op.ZADD, "p.detect.result.5.50.abc.2", "120", "120|95.0"),
        (Op.HMAX, "p.detect.last.checkpoint.5.50", "detect.result.abc.2", "120"),
        (Op.HMAX, "p.detect.last.checkpoint.5.50", "detect.result.__ALL__.2", "120"),
        (Op.SIGNAL, "p.detect.anomaly.signal", "", "4.40"),
    ]


def test_priority_write_is_an_hset_of_the_series():
    w = priority_write("p", "mem", "abc", "2:120")
    assert (w.op, w.key, w.param, w.value, w.ttl) == (
        Op.HSET,
        "p.access.data.priority.mem",
        "abc",
        "2:120",
        600,
    )


def test_record_push_order_and_ttls():
    """``BaseAccessDataProcess.push``: the kept item's data list (EXPIRE max(1800, 5 x 300)),
    every no-data item's list (``_push`` with NO_DATA_LIST_KEY: max(600, 5 x 300) = 1500),
    the noise zset (``_push_noise_data``, 1 day), then the priority HSET, the HDEL of the
    group's claim older than 10 x 300 s at the data time 600 (``sync_priority``; only while it
    holds that claim, the hash's TTL left alone) and the signal."""
    raw = {
        "id": 7,
        "bk_biz_id": 2,
        "name": "s",
        "priority": 2,
        "priority_group_key": "PGK:x",
        "notice": {"options": {"noise_reduce_config": {"is_enabled": True, "dimensions": ["ip"]}}},
        "items": [
            {
                "id": 70,
                "no_data_config": {"is_enabled": True},
                "query_configs": [
                    {
                        "data_source_label": "bk_monitor",
                        "data_type_label": "time_series",
                        "result_table_id": "system.mem",
                        "metric_field": "pct_used",
                        "agg_method": "AVG",
                        "agg_interval": 300,
                        "agg_dimension": ["ip"],
                    }
                ],
                "algorithms": [],
            }
        ],
    }
    strategies = parse_strategies([raw])
    [group] = strategy_groups(strategies).values()
    plan = GroupPlan.of(group, {7: strategies[0]}, record_spec(group.first))
    row = {"ip": "a", "pct_used": 1.0, "_result_": 1.0, "_time_": 600}
    record = access_record(plan, SourceRecord("t", 0, 0, b""), row, None, 900.0, 900)
    _, record = check_priority({"stale": "1:-2401"}, record)

    push = record_push("p", record, plan, detect=False)

    md5 = count_md5({"ip": "a"})
    assert (push.marker.key, push.marker.value, push.marker.ttl) == (
        f"p.access.data.duplicate.strategy_group_{group.key}.600",
        f"{md5}.600",
        3000,
    )
    assert [(w.op, w.key, w.ttl, w.param) for w in push.writes] == [
        (Op.LPUSH, "p.access.data.7.70", 1800, ""),
        (Op.LPUSH, "p.access.nodata.7.70", 1500, ""),
        (Op.ZADD, f"p.access.noise_reduce.total.7.{count_md5(['ip'])}", 86400, "600"),
        (Op.HSET, "p.access.data.priority.PGK:x", 600, md5),
        (Op.HDROP, "p.access.data.priority.PGK:x", 0, "stale"),
        (Op.SIGNAL, "p.access.data.signal", 1800, ""),
    ]
    assert push.writes[2].value == md5 and push.writes[3].value == "2:600"
    assert push.writes[4].value == "1:-2401"
