"""Event-time tumbling windows on a virtual clock.

What a closed bucket must equal is bkmonitor's TSDB answer for the same points: one row per
(bucket start, ``agg_dimension`` values), stamped ``_time_`` at the bucket start, the value
under ``_result_`` and the metric's column (``alarm_backends/tests/service/access/data/
config.py`` ``FORMAT_RAW_DATA`` is such a row), aggregated by ``agg_method``. The bucket is
read ``ACCESS_DATA_TIME_DELAY`` = 10 s after its end (``processor.py``
``AccessDataProcess.get_query_time_range``: ``until = (now - delay) // interval * interval``).
"""

from __future__ import annotations

import math
from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.conditions import compile_conditions
from operators.drops import Drop
from operators.md5 import count_md5
from operators.rejects import Rejected, SourceRecord
from operators.windows import AggMethod, GroupWindows, Unclosed, WindowSpec, WindowState

T = 1_800_000_000  # a multiple of 60
SRC = SourceRecord("t", 0, 0, b"")


def make_spec(method: AggMethod = AggMethod.AVG, **kw) -> WindowSpec:
    base = dict(
        interval=60,
        lateness=10,
        idle_s=60,
        method=method,
        metric="usage",
        alias="usage",
        group_by=("ip",),
    )
    return WindowSpec(**{**base, **kw})


def add(w: GroupWindows, ip: str, at: float, value, now: float | None = None, offset: int = 0):
    raw = {"time": at, "usage": value, "ip": ip, "other": "x"}
    src = SourceRecord("t", 0, offset, b"")
    return w.add(src, raw, {"ip": ip, "other": "x"}, at, at + 1 if now is None else now)


def rows(closed):
    return [c.row for c in closed]


def test_a_bucket_closes_ten_seconds_past_its_end_with_every_point_in_it():
    w = GroupWindows(make_spec(), WindowState("g"))
    assert add(w, "a", T + 5, 1.0) == ([], [])
    assert add(w, "a", T + 50, 2.0) == ([], [])
    assert add(w, "b", T + 59, 7.0) == ([], [])
    assert add(w, "a", T + 69, 3.0) == ([], [])  # watermark T + 69 < T + 60 + 10
    closed, late = add(w, "b", T + 70, 4.0)
    assert late == []
    # Series in md5 order, as stable input for the next steps.
    expected = sorted(
        [
            {"ip": "a", "usage": 1.5, "_result_": 1.5, "_time_": T},
            {"ip": "b", "usage": 7.0, "_result_": 7.0, "_time_": T},
        ],
        key=lambda r: count_md5({"ip": r["ip"]}),
    )
    assert rows(closed) == expected
    assert list(w.state.buckets) == [T + 60]


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        (AggMethod.AVG, 2.0),
        (AggMethod.SUM, 6.0),
        (AggMethod.MIN, 1.0),
        (AggMethod.MAX, 3.0),
        (AggMethod.COUNT, 3),
    ],
)
def test_agg_methods(method, expected):
    w = GroupWindows(make_spec(method), WindowState("g"))
    for i, v in enumerate((3.0, "1", 2)):  # "1": number_format makes strings numbers
        add(w, "a", T + i, v)
    assert rows(w.flush()) == [{"ip": "a", "usage": expected, "_result_": expected, "_time_": T}]


def test_a_late_point_is_dropped_and_counted_and_leaves_the_closed_bucket_alone():
    w = GroupWindows(make_spec(), WindowState("g"))
    add(w, "a", T + 1, 1.0)
    closed, _ = add(w, "a", T + 70, 5.0)
    assert rows(closed)[0]["_result_"] == 1.0
    assert add(w, "a", T + 30, 100.0) == ([], [Drop.LATE])
    assert rows(w.flush()) == [{"ip": "a", "usage": 5.0, "_result_": 5.0, "_time_": T + 60}]


def test_a_far_future_point_does_not_move_the_watermark_past_the_clock():
    w = GroupWindows(make_spec(), WindowState("g"))
    add(w, "a", T + 1, 1.0, now=T + 2)
    closed, late = add(w, "b", T + 86_400, 9.0, now=T + 3)  # a day ahead of the clock
    assert (closed, late) == ([], [])
    assert w.state.watermark == T + 3
    # The on-time series still aggregates its bucket normally.
    assert add(w, "a", T + 30, 3.0, now=T + 31) == ([], [])
    assert rows(add(w, "a", T + 70, 0.0, now=T + 71)[0]) == [
        {"ip": "a", "usage": 2.0, "_result_": 2.0, "_time_": T}
    ]


def test_an_idle_group_closes_its_buckets_as_the_wall_clock_moves_on():
    w = GroupWindows(make_spec(), WindowState("g"))
    add(w, "a", T + 1, 1.0, now=T + 2)
    # Bucket T closes at watermark T + 70: 69 s after the point left it at T + 1.
    assert w.idle_due() == T + 2 + 69
    assert w.idle(T + 61) == []  # idle for 59 s < idle_s = 60
    assert w.idle(T + 62) == [] and w.state.watermark == T + 61
    assert w.idle(T + 70) == [] and w.state.watermark == T + 69  # not added twice
    assert rows(w.idle(T + 71)) == [{"ip": "a", "usage": 1.0, "_result_": 1.0, "_time_": T}]
    assert w.idle_due() is None and w.state.buckets == {}


def test_the_idle_check_waits_at_least_idle_s():
    w = GroupWindows(make_spec(), WindowState("g"))
    add(w, "a", T + 59, 1.0, now=T + 60)
    assert w.idle_due() == T + 60 + 60  # bucket T would close at + 11 s, idle_s is 60


def test_an_idle_group_never_moves_past_the_wall_clock():
    w = GroupWindows(make_spec(), WindowState("g"))
    add(w, "a", T - 1000, 1.0, now=T)
    w.idle(T + 60)
    assert w.state.watermark == T - 1000 + 60
    future = GroupWindows(make_spec(), WindowState("g"))
    add(future, "a", T + 600, 1.0, now=T)  # a point 10 minutes ahead of the clock
    assert future.state.watermark == T
    # Its bucket closes when the wall clock is past it, not before: no busy idle checks.
    assert future.idle_due() == T + 600 + 70


@pytest.mark.usefixtures("unlucky_13")
@pytest.mark.parametrize("closes", ["point", "idle", "flush"])
def test_a_bucket_that_cannot_close_is_lost_alone_naming_its_newest_point(closes):
    """Series a and b of bucket T close together, b's row cannot be made: b comes out as
    Unclosed with the record of its newest point (offset 2) and the error, a closes as ever,
    and b's bucket is gone as a closed one is (the group's state goes on)."""
    w = GroupWindows(make_spec(), WindowState("g"))
    add(w, "a", T + 1, 1.0, now=T + 2, offset=0)
    add(w, "b", T + 2, 13.0, now=T + 3, offset=1)
    add(w, "b", T + 3, 2.0, now=T + 4, offset=2)
    if closes == "point":
        closing, _ = add(w, "c", T + 70, 5.0, now=T + 71, offset=3)
    elif closes == "idle":
        closing = w.idle(T + 4 + 69)
    else:
        closing = w.flush()

    failed = [c for c in closing if isinstance(c, Unclosed)]
    assert [(f.source.offset, repr(f.error)) for f in failed] == [(2, "KeyError('unlucky')")]
    assert [c.row for c in closing if not isinstance(c, Unclosed)] == [
        {"ip": "a", "usage": 1.0, "_result_": 1.0, "_time_": T}
    ]
    assert T not in w.state.buckets and w.state.checkpoint == T


def test_points_the_query_would_not_return():
    where = compile_conditions([{"key": "ip", "method": "neq", "value": ["c"]}])
    w = GroupWindows(make_spec(where=where), WindowState("g"))
    assert add(w, "c", T, 1.0) == ([], [Drop.OUT_OF_QUERY])
    assert add(w, "a", T, None) == ([], [Drop.NO_VALUE])
    assert w.state == WindowState("g")


@pytest.mark.parametrize("value", [[1], {"a": 1}, "abc", True, math.inf, math.nan])
def test_a_value_that_is_not_a_number_is_rejected_before_anything_changes(value):
    w = GroupWindows(make_spec(), WindowState("g"))
    add(w, "a", T, 1.0)
    before = repr(w.state)
    with pytest.raises(Rejected):
        add(w, "a", T + 1, value)
    assert repr(w.state) == before


def test_a_point_sent_twice_counts_once_the_later_value_wins():
    w = GroupWindows(make_spec(AggMethod.SUM), WindowState("g"))
    add(w, "a", T + 1, 1.0)
    add(w, "a", T + 1, 5.0)
    add(w, "a", T + 2, 2.0)
    assert rows(w.flush())[0]["_result_"] == 7.0


def test_no_agg_dimension_groups_by_every_dimension():
    w = GroupWindows(make_spec(group_by=None), WindowState("g"))
    add(w, "a", T, 1.0)
    assert rows(w.flush()) == [
        {"ip": "a", "other": "x", "usage": 1.0, "_result_": 1.0, "_time_": T}
    ]


DIRECT = {
    AggMethod.AVG: lambda values: math.fsum(values) / len(values),
    AggMethod.SUM: math.fsum,
    AggMethod.MIN: lambda values: sorted(values)[0],
    AggMethod.MAX: lambda values: sorted(values)[-1],
    AggMethod.COUNT: len,
}
"""The aggregate as a TSDB computes it over a bucket's stored values."""


points = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),
        st.integers(min_value=0, max_value=600),
        st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(points, st.sampled_from(list(AggMethod)), st.sampled_from([10, 60, 120]))
def test_closed_buckets_equal_a_direct_computation_over_the_points_in_time(ps, method, lateness):
    """Every point that is not late lands in exactly one closed row, whose value is the
    direct aggregate of its bucket's points (a series' later value at the same time replaces
    the earlier, as in a TSDB); the late ones are those whose bucket had closed
    (its end + lateness at or below the newest time seen before them)."""
    w = GroupWindows(make_spec(method, lateness=lateness), WindowState("g"))
    out, expected_buckets = [], defaultdict(dict)
    newest = 0.0
    for ip, offset, value in ps:
        at = T + offset
        start = at // 60 * 60
        closed, late = add(w, ip, at, value)
        out.extend(closed)
        if start + 60 + lateness <= newest:
            assert late == [Drop.LATE]
        else:
            assert late == []
            expected_buckets[(start, ip)][at] = value  # one value per series and time
        newest = max(newest, at)
    out.extend(w.flush())
    got = {(r["_time_"], r["ip"]): r["_result_"] for r in rows(out)}
    assert len(got) == len(out)  # each (bucket, series) closes once
    assert got == {key: DIRECT[method](list(v.values())) for key, v in expected_buckets.items()}
