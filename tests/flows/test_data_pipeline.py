"""The data flow's pipeline in-process (``bytewax.testing``), on a virtual clock.

Expected records are derived by hand from bkmonitor's code: the TSDB row of a bucket
(``access/data/processor.py`` ``AccessDataProcess.query_data``: ``_time_`` the bucket start,
``_result_`` the aggregate), the record built from it (``access/data/records.py``
``DataRecord``), the dedup set every pulled record joins before the filters run
(``AccessDataProcess.filter_duplicates``), the filters (``access/data/filters.py``) and the
priority hash (``access/priority.py``).
"""

from __future__ import annotations

import orjson
import pytest
from bytewax.recovery import RecoveryConfig

from alarmflow.config import BUNDLED_HOSTS, BUNDLED_STRATEGIES, load_settings
from alarmflow.launch import init_recovery
from alarmflow.metrics import DROPPED
from flows.data import pipeline
from flows.points import Plans, point_reader
from operators.hosts import load_host_file
from operators.md5 import count_md5
from operators.strategy import load_strategy_file
from operators.strategy_group import strategy_groups
from state.idempotent import Op
from tests.flows.inprocess import host_7_record, run_points

T = 1_800_000_000  # a multiple of 60
NOW = T + 100_000  # the virtual wall clock: every point is in its past
P = "p"
READER = point_reader(load_settings({}))
PLANS = Plans.of(
    load_strategy_file(BUNDLED_STRATEGIES),
    load_host_file(BUNDLED_HOSTS),
    lambda s: strategy_groups(s).values(),
)
GROUP = {p.group.query["result_table_id"]: p.group.key for p in PLANS.plans.values()}
CPU, MEM = "system.cpu_summary", "system.mem"


def point(rt: str, ip: str, metrics: dict, at: int, biz: int = 2) -> dict:
    dims = {"bk_biz_id": biz, "bk_target_ip": ip, "bk_target_cloud_id": "0"}
    return {"result_table_id": rt, "time": at, "dimensions": dims, "metrics": metrics}


def run(messages: list[dict]) -> tuple[list, list]:
    return run_points(
        lambda batches: pipeline(batches, PLANS, READER, P, lateness=10, clock=lambda: NOW),
        messages,
    )


def md5_of(ip: str) -> str:
    return count_md5({"bk_target_ip": ip, "bk_target_cloud_id": "0"})


def lists(pushes, key: str) -> list[dict]:
    return [
        orjson.loads(w.value)
        for push in pushes
        for w in push.writes
        if w.op is Op.LPUSH and w.key == key
    ]


def dropped(reason: str) -> float:
    return DROPPED.labels("data", reason)._value.get()


def test_two_points_of_one_bucket_make_one_record_stamped_at_the_bucket_start():
    pushes, rejections = run(
        [
            point(MEM, "10.0.0.7", {"pct_used": 40.0}, T + 5),
            point(MEM, "10.0.0.7", {"pct_used": "42.0000004"}, T + 50),  # a string: a number
            point(MEM, "10.0.0.7", {"pct_used": 50.0}, T + 75),
        ]
    )
    assert rejections == []
    md5 = md5_of("10.0.0.7")
    records = lists(pushes, f"{P}.access.data.404.4040")
    for r in records:
        r.pop("access_time")
    # AVG(40.0, 42.0000004) = 41.0000002 -> round(, 6) = 41.0; the next bucket alone: 50.0.
    assert records == [
        host_7_record(T, 41.0, {"pct_used": 41.0, "_result_": 41.0}),
        host_7_record(T + 60, 50.0, {"pct_used": 50.0, "_result_": 50.0}),
    ]
    # 403 (priority 1) and 404 (priority 2) share priority group mem_pct_used: with an empty
    # hash 404 claims the series ("2:{data time}") and 403 is inhibited (is_inhibited).
    assert lists(pushes, f"{P}.access.data.403.4030") == []
    hsets = [(w.key, w.param, w.value) for p in pushes for w in p.writes if w.op is Op.HSET]
    assert hsets == [
        (f"{P}.access.data.priority.mem_pct_used", md5, f"2:{T}"),
        (f"{P}.access.data.priority.mem_pct_used", md5, f"2:{T + 60}"),
    ]
    markers = [(p.marker.key, p.marker.value) for p in pushes]
    dedup = f"{P}.access.data.duplicate.strategy_group_{GROUP[MEM]}"
    assert markers == [(f"{dedup}.{T}", f"{md5}.{T}"), (f"{dedup}.{T + 60}", f"{md5}.{T + 60}")]
    checkpoints = [w.value for p in pushes for w in p.writes if "checkpoint.strategy" in w.key]
    assert checkpoints == [str(T), str(T + 60)]


def test_every_record_joins_the_dedup_set_before_the_filters_run():
    """``filter_duplicates`` adds each non-duplicate record to the dedup set; only then do
    ``HostStatusFilter`` (unknown host: gone) and ``RangeFilter`` run."""
    before = dropped("unknown_host")
    pushes, _ = run([point(MEM, "10.9.9.9", {"pct_used": 1.0}, T)])
    md5 = md5_of("10.9.9.9")
    assert [(p.marker.op, p.marker.value) for p in pushes] == [(Op.SADD, f"{md5}.{T}")]
    # Nothing but the group's checkpoint and run time besides the marker.
    assert [w.op for p in pushes for w in p.writes] == [Op.SET, Op.SET]
    assert dropped("unknown_host") == before + 1


def test_static_threshold_groups_are_checked_in_access():
    pushes, _ = run(
        [
            point(CPU, "10.0.0.7", {"usage": 90.0}, T + 1),
            point(CPU, "10.0.0.7", {"usage": 100.0}, T + 2),
        ]
    )
    anomalies = lists(pushes, f"{P}.detect.anomaly.list.402.4020")
    assert len(anomalies) == 1 and anomalies[0]["data"]["value"] == 95.0
    assert anomalies[0]["data"]["record_id"] == f"{md5_of('10.0.0.7')}.{T}"


@pytest.mark.parametrize("bad", [[1, 2], {"x": 1}, "many", True])
def test_a_bad_metric_value_is_a_rejection_and_the_bucket_goes_on(bad):
    pushes, rejections = run(
        [
            point(MEM, "10.0.0.7", {"pct_used": 10.0}, T + 1),
            point(MEM, "10.0.0.7", {"pct_used": bad}, T + 2),
            point(MEM, "10.0.0.7", {"pct_used": 20.0}, T + 3),
        ]
    )
    assert [(r.reason, r.record.offset) for r in rejections] == [("wrong_type", 1)]
    assert [r["value"] for r in lists(pushes, f"{P}.access.data.404.4040")] == [15.0]


def test_a_bucket_whose_aggregate_overflows_is_a_rejection():
    """Each value is finite; their sum is not: the bucket's record cannot be written (JSON has
    no infinity), so it is rejected, naming the newest point's message; the flow goes on."""
    big = [point(MEM, "10.0.0.7", {"pct_used": 1e308}, T + s) for s in (1, 2)]
    pushes, rejections = run([*big, point(MEM, "10.0.0.8", {"pct_used": 5.0}, T + 3)])
    assert [(r.reason, r.record.offset) for r in rejections] == [("out_of_range", 1)]
    assert [r["value"] for r in lists(pushes, f"{P}.access.data.404.4040")] == [5.0]


@pytest.mark.parametrize("closed_by", ["a later point", "the end of input"])
@pytest.mark.usefixtures("unlucky_13")
def test_a_bucket_that_cannot_close_is_a_rejection_and_the_flow_goes_on(closed_by):
    """A failure nobody foresaw while a bucket closes (``unlucky_13``) rejects that bucket
    alone, naming its newest point's message as ``internal_error`` of the window step, whether
    a later point or the end of input closes it; the flow writes the rest."""
    messages = [
        point(MEM, "10.0.0.7", {"pct_used": 13.0}, T + 1),
        point(MEM, "10.0.0.8", {"pct_used": 20.0}, T + 2),
    ]
    if closed_by == "a later point":
        messages.append(point(MEM, "10.0.0.9", {"pct_used": 30.0}, T + 70))

    pushes, rejections = run(messages)

    assert [(r.reason, r.error, r.record.offset) for r in rejections] == [
        ("internal_error", "window: KeyError: 'unlucky'", 0)
    ]
    values = {
        r["dimensions"]["bk_target_ip"]: r["value"]
        for r in lists(pushes, f"{P}.access.data.404.4040")
    }
    expected = {"10.0.0.8": 20.0, "10.0.0.9": 30.0}
    assert values == (expected if closed_by == "a later point" else {"10.0.0.8": 20.0})


def test_a_point_later_than_the_lateness_is_dropped_and_counted():
    before = dropped("late")
    pushes, rejections = run(
        [
            point(MEM, "10.0.0.7", {"pct_used": 10.0}, T + 1),
            point(MEM, "10.0.0.8", {"pct_used": 30.0}, T + 70),  # closes bucket T
            point(MEM, "10.0.0.7", {"pct_used": 99.0}, T + 30),  # bucket T is closed: late
        ]
    )
    assert rejections == []
    values = {
        (r["dimensions"]["bk_target_ip"], r["time"]): r["value"]
        for r in lists(pushes, f"{P}.access.data.404.4040")
    }
    assert values == {("10.0.0.7", T): 10.0, ("10.0.0.8", T + 60): 30.0}
    assert dropped("late") == before + 1


def test_the_windows_of_a_strategy_group_that_is_gone_are_dropped_on_resume(tmp_path):
    """A run leaves group MEM's watermark in the recovery store; the next run's strategies no
    longer have that group: its state is discarded, the flow goes on (one batch per message,
    so that the resumed run reads only the new one)."""
    init_recovery(tmp_path, 1)
    recovery = RecoveryConfig(str(tmp_path))
    messages = [point(MEM, "10.0.0.7", {"pct_used": 1.0}, T + 1)]
    run_points(lambda s: pipeline(s, PLANS, READER, P, 10, lambda: NOW), messages, recovery, 1)
    without_mem = Plans({k: p for k, p in PLANS.plans.items() if k != GROUP[MEM]}, PLANS.hosts)
    messages.append(point(CPU, "10.0.0.7", {"usage": 1.0}, T + 1))

    pushes, rejections = run_points(
        lambda s: pipeline(s, without_mem, READER, P, 10, lambda: NOW), messages, recovery, 1
    )

    assert rejections == []
    assert [p.marker.key.rsplit(".", 1)[0] for p in pushes] == [
        f"{P}.access.data.duplicate.strategy_group_{GROUP[CPU]}"
    ]
