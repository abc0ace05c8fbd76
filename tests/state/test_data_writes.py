"""What the time-series flows write for one record."""

from __future__ import annotations

import orjson

from state.data_writes import Checked, anomaly_push, checkpoint_writes, data_push, priority_write
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
