"""Event messages: type dispatch, check() and flat() per type."""

from __future__ import annotations

from collections import OrderedDict, UserDict
from collections.abc import Mapping
from types import MappingProxyType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from operators.event_records import flat_event, is_object, parse_time
from operators.rejects import Reason, Rejected

DISK_FULL = {
    "server": "10.0.0.5",
    "utctime2": "2024-05-01 08:00:00",
    "value": [
        {
            "event_time": "2024-05-01 16:00:00",
            "event_title": "",
            "extra": {
                "type": 6,
                "bizid": 0,
                "cloudid": 0,
                "host": "10.0.0.7",
                "disk": "/data",
                "free": 3,
                "file_system": "/dev/vdb1",
                "fstype": "ext4",
            },
        }
    ],
}
T = 1714550400  # 2024-05-01 08:00:00 UTC


def gse(kind: int, **extra) -> dict:
    return {
        "server": "10.0.0.5",
        "utctime2": "2024-05-01 08:00:00",
        "value": [{"event_time": "2024-05-01 16:00:00", "extra": {"type": kind, **extra}}],
    }


def test_time_is_parsed_as_utc():
    assert parse_time("2024-05-01 08:00:00") == T


def test_disk_full_is_one_record_for_extra_host_at_utctime2():
    kind, records = flat_event(DISK_FULL)
    assert kind == 6
    assert records == [
        {
            "_time_": "2024-05-01 08:00:00",
            "_type_": 6,
            "_bizid_": 0,
            "_cloudid_": 0,
            "_server_": "10.0.0.5",
            "_host_": "10.0.0.7",
            "_title_": "",
            "_extra_": DISK_FULL["value"][0]["extra"],
        }
    ]


def test_event_time_is_used_without_utctime2_and_bkmonitorbeat_takes_the_top_ip():
    message = {**gse(7, host="10.0.0.9", corefile="/data/core.1"), "ip": "10.0.0.3"}
    del message["utctime2"]
    message["agent"] = {"type": "bkmonitorbeat"}
    _, [record] = flat_event(message)
    assert (record["_time_"], record["_host_"]) == ("2024-05-01 16:00:00", "10.0.0.3")


def test_ping_records_name_the_ping_server():
    """``PingEvent.flat()``: ``_server_`` is the pinging host (``extra.host``)."""
    _, records = flat_event(gse(8, host="10.0.0.1", iplist=["10.0.0.2"]))
    assert [(r["_server_"], r["_host_"]) for r in records] == [("10.0.0.1", "10.0.0.2")]


def test_agent_event_is_one_record_per_host_with_its_agent_id():
    hosts = [
        {"bizid": 2, "cloudid": 0, "ip": "10.0.0.1"},
        {"bizid": 2, "cloudid": 0, "agent_id": "0:10.0.0.3"},
        {"bizid": 2, "cloudid": 0, "agent_id": "02000000000000000000000000000002"},
    ]
    kind, records = flat_event(gse(2, host=hosts))
    assert kind == 2
    assert [(r["_host_"], r["_agent_id_"], r["_bizid_"]) for r in records] == [
        ("10.0.0.1", "", 2),
        ("", "0:10.0.0.3", 2),
        ("", "02000000000000000000000000000002", 2),
    ]


def test_ping_is_one_record_per_unreachable_ip():
    _, records = flat_event(gse(8, host="10.0.0.1", iplist=["10.0.0.2", "10.0.0.4"]))
    assert [r["_host_"] for r in records] == ["10.0.0.2", "10.0.0.4"]


def test_custom_string_event_is_one_record_per_string_at_utctime():
    message = {
        "_bizid_": 0,
        "_cloudid_": 0,
        "_server_": "10.0.0.7",
        "_time_": "2024-05-01 16:00:00",
        "_utctime_": "2024-05-01 08:00:00",
        "_value_": ["nginx down", 3, "disk gone"],
    }
    kind, records = flat_event(message)
    assert kind == 100
    assert [(r["_title_"], r["_host_"], r["_time_"]) for r in records] == [
        ("nginx down", "10.0.0.7", "2024-05-01 08:00:00"),
        ("disk gone", "10.0.0.7", "2024-05-01 08:00:00"),
    ]


def test_process_event_takes_ms_timestamp_dimensions_and_its_agent_id():
    """``GseProcessEventRecord.flat()``: ms timestamp floored to the second, ``_agent_id_``
    from ``bk_agent_id`` ("" without one), ``_title_`` from bkmonitor's template."""
    dimension = {
        "bk_target_ip": "10.0.0.7",
        "bk_target_cloud_id": "0",
        "process_name": "nginx",
        "process_group_id": "web",
        "process_index": "web:nginx",
    }
    message = {
        "data_id": 1100008,
        "data": [
            {"dimension": {}, "timestamp": 1},
            {
                "dimension": dimension,
                "event": {"content": "restart ok"},
                "event_name": "process_restart_success",
                "timestamp": 1619171000123,
            },
        ],
    }
    kind, [record] = flat_event(message)
    assert kind == 101
    assert record["_time_"] == "2021-04-23 09:43:20"
    assert parse_time(record["_time_"]) == 1619171000
    assert record["_agent_id_"] == ""
    assert record["_title_"] == "事件类型: 进程重启成功, 事件内容: restart ok"
    assert record["dimensions"] == {**dimension, "event_name": "process_restart_success"}
    assert record["_extra_"] == {"value": {**message["data"][1], "dimension": record["dimensions"]}}


@pytest.mark.parametrize("kind", [0, 1, 4, 5])
def test_ignored_types_give_no_records(kind):
    assert flat_event(gse(kind, host="10.0.0.1")) == (kind, [])


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ({"hello": 1}, Reason.MISSING_FIELD),
        (gse(42, host="10.0.0.1"), Reason.WRONG_TYPE),
        (gse("six", host="10.0.0.1"), Reason.WRONG_TYPE),
        ({**DISK_FULL, "value": DISK_FULL["value"] * 2}, Reason.WRONG_TYPE),
        ({**DISK_FULL, "utctime2": "yesterday"}, Reason.WRONG_TYPE),
        ({**DISK_FULL, "utctime2": 2**63 - 1}, Reason.OUT_OF_RANGE),
        ({**DISK_FULL, "utctime2": "2024-13-01 00:00:00"}, Reason.OUT_OF_RANGE),
        ({**DISK_FULL, "utctime2": ["2024-05-01"]}, Reason.WRONG_TYPE),
        ({**DISK_FULL, "utctime2": "nan"}, Reason.OUT_OF_RANGE),
        (gse(2, host="10.0.0.1"), Reason.WRONG_TYPE),
        (gse(8, host="10.0.0.1"), Reason.WRONG_TYPE),
        ({"_value_": [1, 2], "_utctime_": "2024-05-01 08:00:00"}, Reason.MISSING_FIELD),
        ({"_value_": ["x"]}, Reason.MISSING_FIELD),
        ({"data_id": 1100008, "data": [{"dimension": {}}]}, Reason.MISSING_FIELD),
        (
            {"data_id": 1100008, "data": [{"event_name": "x", "dimension": [], "timestamp": 1}]},
            Reason.WRONG_TYPE,
        ),
        (
            {"data_id": 1100008, "data": [{"event_name": "x", "timestamp": {"ms": 1}}]},
            Reason.WRONG_TYPE,
        ),
        (
            {"data_id": 1100008, "data": [{"event_name": "x", "timestamp": 2**63 - 1}]},
            Reason.OUT_OF_RANGE,
        ),
    ],
)
def test_malformed_events_are_rejected_with_a_reason(message, reason):
    with pytest.raises(Rejected) as caught:
        flat_event(message)
    assert caught.value.reason is reason


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)


@given(
    st.one_of(
        JSON,
        JSON.map(lambda v: OrderedDict(v) if isinstance(v, dict) else v),
        JSON.map(lambda v: MappingProxyType(v) if isinstance(v, dict) else v),
        JSON.map(lambda v: UserDict(v) if isinstance(v, dict) else v),
    )
)
def test_is_object_is_the_mapping_check(value):
    assert is_object(value) is isinstance(value, Mapping)


@given(
    st.one_of(
        st.integers(-(2**70), 2**70),
        st.floats(-1e15, 1e15),
        st.integers(0, 10**6).map(str),
    )
)
def test_a_cloud_id_is_int_of_the_value(cloud):
    message = {"_server_": "10.0.0.7", "_utctime_": "2024-05-01 08:00:00", "_value_": ["x"]}
    [record] = flat_event({**message, "_cloudid_": cloud})[1]
    assert type(record["_cloudid_"]) is int
    assert record["_cloudid_"] == int(cloud or 0)


@pytest.mark.parametrize("cloudid", [1e308, "9" * 30, -1e19])
def test_a_cloud_id_wider_than_64_bits_is_out_of_range(cloudid):
    """Found by fuzzing: int() of a huge float or digit string made a cloud id no JSON encoder
    takes, and the record's md5 (``orjson.dumps``) failed as ``internal_error``."""
    host = {"bizid": 0, "cloudid": cloudid, "ip": "10.0.0.5"}
    for message in (gse(3, cloudid=cloudid), gse(2, host=[host])):
        with pytest.raises(Rejected) as caught:
            flat_event(message)
        assert caught.value.reason is Reason.OUT_OF_RANGE


@pytest.mark.parametrize("ro", [1, 1.5, True, "ro", {"0": {"fs": "/dev/vdb1"}}])
def test_a_disk_readonly_ro_that_is_no_list_is_a_wrong_type(ro):
    """Found by fuzzing: ``extra.ro`` is read as a list of entries; a number made
    ``filter_dimensions`` raise TypeError, an object ``clean_dimensions`` KeyError, each
    dead-lettered as ``internal_error``."""
    with pytest.raises(Rejected) as caught:
        flat_event(gse(3, ro=ro))
    assert caught.value.reason is Reason.WRONG_TYPE
    assert flat_event(gse(3, ro=[]))[1] and flat_event(gse(3))[1]
