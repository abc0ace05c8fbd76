"""Data filters, priority and the static-threshold check."""

from __future__ import annotations

from alarmflow.config import BUNDLED_HOSTS
from operators.conditions import MISSING
from operators.data_filters import (
    HostStatus,
    RangeMatcher,
    anomaly_levels,
    anomaly_record,
    host_status,
    is_expired,
    plain_conditions,
)
from operators.hosts import load_host_file

HOSTS = load_host_file(BUNDLED_HOSTS)
NOW = 1_800_000_000


def test_expire_boundary_is_30_minutes_or_ten_intervals():
    assert [is_expired(NOW - m * 60, NOW, 60) for m in (28, 29, 30, 31)] == [
        False,
        False,
        False,
        True,
    ]
    assert not is_expired(NOW - 2900, NOW, 300) and is_expired(NOW - 3001, NOW, 300)


def test_host_status():
    assert host_status({"device": "x"}, HOSTS) is HostStatus.KEEP
    assert host_status({"bk_target_ip": "", "bk_host_id": ""}, HOSTS) is HostStatus.UNKNOWN
    assert host_status({"bk_target_ip": "10.0.0.7", "bk_target_cloud_id": "0"}, HOSTS) == "keep"
    assert host_status({"bk_target_ip": "10.9.9.9", "bk_target_cloud_id": 0}, HOSTS) == (
        HostStatus.UNKNOWN
    )
    assert host_status({"bk_host_id": 40}, HOSTS) is HostStatus.DISABLED
    assert host_status({"bk_target_ip": "10.0.0.7"}, HOSTS) is HostStatus.KEEP


def test_range_matcher_target_and_real_time_condition():
    item = {
        "query_configs": [
            {
                "agg_method": "REAL_TIME",
                "agg_condition": [{"key": "device_name", "method": "eq", "value": ["cpu-total"]}],
            }
        ],
        "target": [
            [
                {
                    "field": "bk_target_ip",
                    "method": "eq",
                    "value": [{"bk_target_ip": "10.0.0.7", "bk_target_cloud_id": 0}],
                }
            ]
        ],
    }
    matcher = RangeMatcher.for_item(item)
    dims = {"bk_target_ip": "10.0.0.7", "bk_target_cloud_id": "0", "device_name": "cpu-total"}
    assert matcher.matches(dims)
    assert not matcher.matches({**dims, "device_name": "cpu0"})
    assert not matcher.matches({**dims, "bk_target_ip": "10.0.0.8"})
    topo = RangeMatcher.for_item(
        {
            "target": [
                [
                    {
                        "field": "host_topo_node",
                        "method": "eq",
                        "value": [{"bk_obj_id": "set", "bk_inst_id": 1}],
                    }
                ]
            ]
        }
    )
    assert topo.matches({"bk_topo_node": ["biz|2", "set|1"]})
    assert not topo.matches({"bk_target_ip": "10.0.0.7"})


def test_plain_conditions_are_left_to_the_query():
    item = {
        "query_configs": [
            {"agg_method": "AVG", "agg_condition": [{"key": "d", "method": "eq", "value": ["x"]}]}
        ]
    }
    assert RangeMatcher.for_item(item).matches({"d": "y"})


def test_threshold_levels_and_anomaly_shape():
    algorithms = [
        {"type": "Threshold", "level": 2, "config": [[{"method": "gte", "threshold": 80}]]},
        {"type": "Threshold", "level": 1, "config": [[{"method": "gte", "threshold": 90}]]},
    ]
    assert anomaly_levels(algorithms, 95) == [1, 2]
    assert anomaly_levels(algorithms, "85") == [2]
    assert anomaly_levels(algorithms, None) == []
    data = {"time": NOW, "value": 95, "record_id": f"abc.{NOW}"}
    anomaly = anomaly_record(data, [1], 402, 4020, "snap")
    assert anomaly["anomaly"]["1"]["anomaly_id"] == f"abc.{NOW}.402.4020.1"
    assert anomaly["anomaly"]["1"]["anomaly_time"] == "2027-01-15 08:00:00"


def test_the_tsdb_applies_the_plain_conditions_and_the_builtin_ones():
    """``AccessDataProcess.query_data`` clears ``_advance_where`` (reg/nreg/include/exclude)
    for grouped sources; ``UnifyQuery.process_data_sources`` adds the disk filter."""
    query = {
        "data_source_label": "bk_monitor",
        "data_type_label": "time_series",
        "result_table_id": "system.disk",
        "agg_condition": [
            {"key": "mount", "method": "eq", "value": ["/data"]},
            {"key": "mount", "method": "reg", "value": ["^/x"], "condition": "and"},
        ],
    }
    where = plain_conditions(query)
    lookup = {"mount": "/data", "device_type": "ext4"}
    assert where.matches(lambda k: lookup.get(k, MISSING))
    assert not where.matches(lambda k: {**lookup, "device_type": "tmpfs"}.get(k, MISSING))
    assert not where.matches(lambda k: {**lookup, "mount": "/"}.get(k, MISSING))
    assert plain_conditions({"agg_condition": []}).groups == ()
