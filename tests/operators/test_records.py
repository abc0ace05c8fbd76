"""DataRecord semantics: record id, dimensions, values, rounding, enrichment."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alarmflow.config import BUNDLED_HOSTS
from operators.hosts import load_host_file
from operators.md5 import count_md5
from operators.records import (
    Point,
    RecordSpec,
    clean_record,
    convert,
    parse_point,
    raw_dimensions,
    record_id,
    record_spec,
)
from operators.rejects import Rejected
from operators.strategy import Item

T = 1_569_246_480
ITEM = Item(
    1,
    (
        {
            "data_source_label": "bk_monitor",
            "data_type_label": "time_series",
            "result_table_id": "system.cpu_load",
            "metric_field": "load5",
            "agg_method": "AVG",
            "agg_dimension": ["bk_target_ip", "bk_target_cloud_id"],
        },
    ),
)
RAW = {
    "bk_target_ip": "127.0.0.1",
    "bk_target_cloud_id": "0",
    "load5": 1.381234,
    "_result_": 1.381234,
    "_time_": T,
}
STANDARD = {
    "time": T,
    "value": 1.381234,
    "values": {"load5": 1.381234, "_result_": 1.381234, "time": T},
    "dimensions": {"bk_target_ip": "127.0.0.1", "bk_target_cloud_id": "0"},
    "record_id": f"ac6847eefd664275c7b3693829f68bab.{T}",
}


def test_clean_record_is_bkmonitors_standard_data():
    record = clean_record(RAW, record_spec(ITEM), None, 12.5)
    assert record["access_time"] == 12.5
    assert record["dimension_fields"] == ["bk_target_ip", "bk_target_cloud_id"]
    assert {k: v for k, v in record.items() if k in STANDARD} == STANDARD


def test_missing_group_by_field_counts_as_none_and_no_group_by_takes_every_key():
    spec = RecordSpec(("bk_target_ip", "device"), (("_result_", "_result_"),))
    assert raw_dimensions(RAW, spec) == {"bk_target_ip": "127.0.0.1", "device": None}
    spec = RecordSpec(None, (("_result_", "_result_"),))
    raw = {**RAW, "bk_task_index_1": 3}
    assert raw_dimensions(raw, spec) == {
        "bk_target_ip": "127.0.0.1",
        "bk_target_cloud_id": "0",
        "load5": 1.381234,
    }


def test_empty_proc_port_dynamic_dimensions_are_skipped():
    spec = RecordSpec(("listen", "protocol", "pid"), ())
    assert raw_dimensions({"listen": "[]", "protocol": "tcp", "pid": 1}, spec) == {
        "protocol": "tcp",
        "pid": 1,
    }
    proc_port = RecordSpec(("listen", "pid"), (), proc_port=True)
    assert raw_dimensions({"listen": "[80]", "pid": 1}, proc_port) == {"pid": 1}


def test_values_are_number_formatted_and_rounded():
    assert convert(None) == 0 and convert("") == 0 and convert(0) == 0
    assert convert("1.2345678") == 1.234568 and convert("7") == 7 and convert("x") == "x"
    raw = {"_time_": T, "_result_": None, "load5": "2.1234567"}
    values = clean_record(raw, record_spec(ITEM), None, 0)["values"]
    assert values == {"load5": 2.123457, "_result_": 0, "time": T}


def test_real_time_value_is_the_metric_field():
    item = Item(2, ({**ITEM.query_configs[0], "agg_method": "REAL_TIME"},))
    record = clean_record({**RAW, "load5": 3.5, "_result_": None}, record_spec(item), None, 0)
    assert record["value"] == 3.5


REAL_TIME_ITEM = Item(2, ({**ITEM.query_configs[0], "agg_method": "REAL_TIME"},))


@pytest.mark.parametrize(
    ("raw_value", "value"),
    [
        # records.py DataRecord.value -> _convert: number_format (common_utils.py: a string
        # with a "." becomes float(v), else int(v); a falsy value 0), then round(v, 6).
        ("7", 7),
        ("1.23456789", 1.234568),
        (2.0000004, 2.0),
        (1e-7, 0.0),
        (True, 1),
        ("", 0),
        (0.0, 0),
        ("n/a", "n/a"),  # int("n/a") fails: number_format keeps the string
        (None, None),  # DataRecord.value: "if value is None: return"
    ],
)
def test_the_value_is_converted_as_bkmonitor_does_before_it_is_stored(raw_value, value):
    raw = {**RAW, "load5": raw_value, "_result_": None}
    record = clean_record(raw, record_spec(REAL_TIME_ITEM), None, 0)
    assert record["value"] == value and type(record["value"]) is type(value)
    periodic = clean_record({**RAW, "_result_": raw_value}, record_spec(ITEM), None, 0)
    assert periodic["value"] == value


@pytest.mark.parametrize(
    ("raw_value", "reason"),
    [
        ([1], "wrong_type"),
        ({"a": 1}, "wrong_type"),
        (math.inf, "out_of_range"),
        (math.nan, "out_of_range"),
    ],
)
def test_a_value_bkmonitors_round_would_raise_on_is_rejected(raw_value, reason):
    """``round([1], 6)`` raises TypeError in ``_convert``; NaN and infinities have no JSON."""
    with pytest.raises(Rejected) as caught:
        clean_record({**RAW, "load5": raw_value}, record_spec(REAL_TIME_ITEM), None, 0)
    assert caught.value.reason == reason


def test_time_is_required():
    with pytest.raises(Rejected):
        record_id({"bk_target_ip": "x"}, record_spec(ITEM))


def test_enrichment_by_address_keeps_record_id_raw():
    hosts = load_host_file(BUNDLED_HOSTS)
    raw = {**RAW, "bk_target_ip": "10.0.0.7"}
    record = clean_record(raw, record_spec(ITEM), hosts, 0)
    assert record["dimensions"] == {
        "bk_target_ip": "10.0.0.7",
        "bk_target_cloud_id": "0",
        "bk_topo_node": ["biz|2", "module|100", "set|1"],
        "bk_host_id": 7,
    }
    assert record["record_id"] == record_id(raw, record_spec(ITEM))
    assert record["dimension_fields"] == ["bk_target_ip", "bk_target_cloud_id"]


def test_enrichment_by_host_id_sets_ip_and_string_cloud():
    hosts = load_host_file(BUNDLED_HOSTS)
    spec = RecordSpec(("bk_host_id",), ())
    dims = clean_record({"bk_host_id": 2, "time": T}, spec, hosts, 0)["dimensions"]
    assert dims["bk_target_ip"] == "10.0.0.2" and dims["bk_target_cloud_id"] == "0"


scalars = st.one_of(st.integers(), st.text(max_size=5), st.none(), st.floats(allow_nan=False))


dimension_names = st.text(min_size=1, max_size=6).filter(
    lambda k: k not in ("_time_", "_result_") and not k.startswith("bk_task_index_")
)


@given(st.dictionaries(dimension_names, scalars, max_size=6), st.randoms())
def test_record_id_does_not_depend_on_key_order(dims, rnd):
    keys = list(dims)
    rnd.shuffle(keys)
    shuffled = {k: dims[k] for k in keys}
    spec = RecordSpec(None, ())
    raw = {**dims, "_time_": T}
    assert record_id(raw, spec) == record_id({**shuffled, "_time_": T}, spec)
    assert record_id(raw, spec) == f"{count_md5(dims)}.{T}"
    assert count_md5(dims) == count_md5(shuffled)


def test_parse_point_flattens_the_message():
    point = parse_point(
        {
            "result_table_id": "system.cpu_summary",
            "time": T,
            "dimensions": {"bk_biz_id": "2", "bk_target_ip": "10.0.0.7"},
            "metrics": {"usage": 1.5},
        }
    )
    assert point == Point(
        "system.cpu_summary",
        2,
        {"time": T, "usage": 1.5, "bk_biz_id": "2", "bk_target_ip": "10.0.0.7"},
        ("bk_biz_id", "bk_target_ip"),
    )
    assert point.dimensions == {"bk_biz_id": "2", "bk_target_ip": "10.0.0.7"}
    no_biz = {"result_table_id": "x", "time": T, "dimensions": {}, "metrics": {}}
    assert parse_point(no_biz).bk_biz_id == 0
    assert parse_point({**no_biz, "dimensions": {"bk_biz_id": "n/a"}}).bk_biz_id == 0


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ({"time": T, "dimensions": {}, "metrics": {}}, "missing_field"),
        ({"result_table_id": "x", "dimensions": {}, "metrics": {}}, "missing_field"),
        ({"result_table_id": "x", "time": "soon", "dimensions": {}, "metrics": {}}, "wrong_type"),
        ({"result_table_id": "x", "time": T, "dimensions": [], "metrics": {}}, "wrong_type"),
    ],
)
def test_parse_point_rejects_bad_messages(message, reason):
    with pytest.raises(Rejected) as caught:
        parse_point(message)
    assert caught.value.reason == reason


def outcome(fn: Callable[[Any], Any], value: Any) -> tuple[str, Any]:
    try:
        result = fn(value)
    except Exception as exc:
        return "raised", (type(exc), str(exc))
    return type(result).__name__, result


@given(
    value=st.one_of(
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.booleans(),
        st.none(),
        st.text(max_size=8),
        st.lists(st.integers(), max_size=2),
    )
)
def test_convert_equals_main_before_the_performance_work(value, baseline_module):
    before = baseline_module("operators/records.py").convert
    assert outcome(convert, value) == outcome(before, value)


def test_a_numeric_string_wider_than_64_bits_is_out_of_range():
    """Found by fuzzing: ``number_format("9" * 30)`` is an int no JSON encoder takes; the
    real-time flow's writes (``orjson.dumps``) then failed as ``internal_error``."""
    for text in ("9" * 30, "-" + "9" * 30):
        with pytest.raises(Rejected) as caught:
            convert(text)
        assert caught.value.reason == "out_of_range"
    assert convert(str(2**63 - 1)) == 2**63 - 1
