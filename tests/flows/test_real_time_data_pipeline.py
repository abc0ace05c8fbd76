"""The real-time data flow's pipeline in-process (``bytewax.testing``), on a virtual clock.

Expected values are derived by hand from bkmonitor's code: ``access/data/processor.py``
(``AccessRealTimeDataProcess.flat``: one record per strategy; ``BaseAccessDataProcess.push``:
data lists, no-data lists, ``_push_noise_data``), ``access/data/records.py`` (``_convert``)
and ``access/priority.py`` (``PriorityChecker``).
"""

from __future__ import annotations

import copy

import orjson
import pytest

from alarmflow.config import BUNDLED_HOSTS, BUNDLED_STRATEGIES, load_settings
from flows.points import Plans, point_reader
from flows.real_time_data import pipeline
from operators.hosts import load_host_file
from operators.md5 import count_md5
from operators.strategy import load_strategy_file, parse_strategies
from operators.strategy_group import real_time_groups
from state.idempotent import Op
from tests.flows.inprocess import run_points

NOW = 1_800_000_000
P = "p"
READER = point_reader(load_settings({}))
IO = "system.io"
BUNDLED = load_strategy_file(BUNDLED_STRATEGIES)


def io_strategy(sid: int, priority: int, **extra) -> dict:
    """A REAL_TIME strategy on ``system.io`` in priority group ``PGK:io``."""
    raw = copy.deepcopy(dict(next(s for s in BUNDLED if s.id == 401).raw))
    raw.update(id=sid, name=f"io {sid}", priority=priority, priority_group_key="PGK:io", **extra)
    item = raw["items"][0]
    item["id"] = sid * 10
    item["query_configs"][0].update(result_table_id=IO, metric_field="util")
    return raw


HIGH = io_strategy(
    501,
    5,
    notice={
        "options": {"noise_reduce_config": {"is_enabled": True, "dimensions": ["bk_target_ip"]}}
    },
)
LOW = io_strategy(502, 1)
LOW["items"][0]["no_data_config"] = {"is_enabled": True, "continuous": 5}
PLANS = Plans.of(
    (*BUNDLED, *parse_strategies([HIGH, LOW])),
    load_host_file(BUNDLED_HOSTS),
    lambda s: real_time_groups(s).values(),
)


def point(rt: str, ip: str, metrics: dict, at: int = NOW, biz: int = 2) -> dict:
    dims = {"bk_biz_id": biz, "bk_target_ip": ip, "bk_target_cloud_id": "0"}
    return {"result_table_id": rt, "time": at, "dimensions": dims, "metrics": metrics}


def run(messages: list[dict]) -> tuple[list, list]:
    return run_points(
        lambda batches: pipeline(batches, PLANS, READER, P, clock=lambda: NOW + 5), messages
    )


def writes(pushes, op_: Op, key: str) -> list:
    return [(w.param, w.value) for p in pushes for w in p.writes if w.op is op_ and w.key == key]


MD5 = count_md5({"bk_target_ip": "10.0.0.7", "bk_target_cloud_id": "0"})


def test_the_higher_priority_strategy_inhibits_the_lower_one_on_a_series():
    pushes, rejections = run([point(IO, "10.0.0.7", {"util": "12.3456789"})])
    assert rejections == []
    [push] = pushes
    high = [orjson.loads(v) for _, v in writes(pushes, Op.LPUSH, f"{P}.access.data.501.5010")]
    # _convert: "12.3456789" has a ".": float(), then round(, 6).
    assert [(r["value"], r["values"]["util"]) for r in high] == [(12.345679, 12.345679)]
    # PriorityChecker: 501 (5) first claims the series, 502 (1) is then inhibited.
    assert writes(pushes, Op.LPUSH, f"{P}.access.data.502.5020") == []
    assert writes(pushes, Op.HSET, f"{P}.access.data.priority.PGK:io") == [(MD5, f"5:{NOW}")]
    # push(): every item whose no-data detection is on gets every filtered record, inhibited
    # or not (NO_DATA_LIST_KEY, EXPIRE max(600, 5 x 60)).
    nodata = [w for w in push.writes if w.key == f"{P}.access.nodata.502.5020"]
    assert [(orjson.loads(w.value)["record_id"], w.ttl) for w in nodata] == [(f"{MD5}.{NOW}", 600)]
    # _push_noise_data: member count_md5({"bk_target_ip": ...}), score the data time, key
    # noise_dimension_hash = count_md5(["bk_target_ip"]); only the pushed item (501).
    noise_key = f"{P}.access.noise_reduce.total.501.{count_md5(['bk_target_ip'])}"
    assert writes(pushes, Op.ZADD, noise_key) == [
        (str(NOW), count_md5({"bk_target_ip": "10.0.0.7"}))
    ]
    assert [w.value for w in push.writes if w.op is Op.SIGNAL] == ["501"]


def test_each_record_renews_the_claim_with_its_data_time():
    """``check_records`` sorts a record's items by priority, highest first, so 501 claims
    the series at each record (``"5:{time}"``) and 502 stays inhibited."""
    pushes, _ = run(
        [
            point(IO, "10.0.0.7", {"util": 1.0}, NOW - 301),
            point(IO, "10.0.0.7", {"util": 2.0}, NOW),
        ]
    )
    assert writes(pushes, Op.HSET, f"{P}.access.data.priority.PGK:io") == [
        (MD5, f"5:{NOW - 301}"),
        (MD5, f"5:{NOW}"),
    ]
    assert writes(pushes, Op.LPUSH, f"{P}.access.data.502.5020") == []


@pytest.mark.parametrize(("bad", "reason"), [([1], "wrong_type"), ({"a": 1}, "wrong_type")])
def test_a_metric_round_would_raise_on_is_a_rejection(bad, reason):
    pushes, rejections = run(
        [point(IO, "10.0.0.7", {"util": bad}), point(IO, "10.0.0.8", {"util": 3.0})]
    )
    assert [(r.reason, r.record.offset) for r in rejections] == [(reason, 0)]
    assert len(writes(pushes, Op.LPUSH, f"{P}.access.data.501.5010")) == 1


@pytest.mark.parametrize(
    ("data_time", "reason"), [(4_102_444_800, "future_time"), (NOW * 1000, "millisecond_time")]
)
def test_a_time_dimension_outside_the_window_is_rejected_as_the_message_time_would_be(
    data_time, reason
):
    """``_time_`` is the data time when set (``access/data/records.py`` ``DataRecord.time``:
    ``raw_data.get("_time_") or raw_data["time"]``), so the window checks it, not only the
    message's ``time``."""
    odd = point(IO, "10.0.0.7", {"util": 1.0})
    odd["dimensions"]["_time_"] = data_time
    pushes, rejections = run([odd, point(IO, "10.0.0.8", {"util": 3.0})])
    assert [(r.reason, r.record.offset) for r in rejections] == [(reason, 0)]
    assert "'_time_'" in rejections[0].error
    assert len(writes(pushes, Op.LPUSH, f"{P}.access.data.501.5010")) == 1


def test_a_record_the_filters_remove_writes_nothing():
    pushes, _ = run(
        [
            point(IO, "10.9.9.9", {"util": 1.0}),  # unknown host: gone, no no-data either
            point(IO, "10.0.0.7", {"util": 1.0}, NOW - 3600),  # expired
        ]
    )
    assert pushes == []
