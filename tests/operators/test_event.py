"""Event access after flat(): host lookup, fan-out, the filters in order, clean().

Expected texts are bkmonitor's (``records/*.py`` ``clean_anomaly_message``); the per-type
record ids are derived from bkmonitor's fixtures in ``test_event_fixtures.py``."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from operators.bounds import TimeWindow
from operators.event import EventStrategies, access, checked_records, dimensions_md5
from operators.event_records import TIME_FORMAT, flat_event, format_time, parse_time
from operators.hosts import parse_hosts
from operators.md5 import count_md5
from operators.rejects import Reason, Rejected
from operators.strategy import parse_strategies
from operators.targets import parse_dynamic_groups

T = 1714550400  # 2024-05-01 08:00:00 UTC
NOW = T + 3
P = "bk_bkmonitorv3.ee"
TOPO = {
    "module|9": [
        {"bk_obj_id": o, "bk_inst_id": i}
        for o, i in (("module", 9), ("set", 5), ("test", 2), ("biz", 2))
    ]
}
HOSTS = parse_hosts(
    [
        {
            "bk_host_id": 2,
            "bk_host_innerip": "127.0.0.1",
            "bk_cloud_id": 0,
            "bk_biz_id": 2,
            "bk_agent_id": "0200000000000000000000000000000a",
            "topo_link": TOPO,
        },
        {
            "bk_host_id": 3,
            "bk_host_innerip": "127.0.0.3",
            "bk_cloud_id": 0,
            "bk_biz_id": 2,
            "bk_state": "故障中",
        },
        {"bk_host_id": 4, "bk_host_innerip": "127.0.0.4", "bk_cloud_id": 2, "bk_biz_id": 2},
        {"bk_host_id": 5, "bk_host_innerip": "127.0.0.5", "bk_cloud_id": 2, "bk_biz_id": 3},
        {"bk_host_id": 6, "bk_host_innerip": "127.0.0.6", "bk_cloud_id": 2, "bk_biz_id": 2},
    ]
)
DIMS = {
    "bk_target_ip": "127.0.0.1",
    "bk_target_cloud_id": 0,
    "bk_host_id": 2,
    "bk_topo_node": ["biz|2", "module|9", "set|5", "test|2"],
}
MD5 = "990d2ce882caacb380df66462c847d9a"
MD5_V1 = "b3a0d98506ed48e358e9176dbe4d23c4"
MD5_V2 = "8043faacbbd950898164a946faabe72c"


def strategy(sid, metric, level=2, biz=2, **extra):
    item = {
        "id": sid * 10,
        "algorithms": [{"level": level}],
        "query_configs": [
            {
                "data_source_label": "bk_monitor",
                "data_type_label": "event",
                "metric_id": f"bk_monitor.{metric}",
                "agg_condition": extra.pop("agg_condition", []),
            }
        ],
    }
    if "target" in extra:
        item["target"] = extra.pop("target")
    return {"id": sid, "bk_biz_id": biz, "update_time": 1714000000, "items": [item], **extra}


def run(message, *strategies, now=NOW):
    """Every flat record of ``message`` through :func:`access`, anomalies and drops joined."""
    index = EventStrategies(parse_strategies(list(strategies)))
    anomalies, drops = [], []
    for record in flat_event(message)[1]:
        found, dropped = access(record, HOSTS, index, P, now)
        anomalies.extend(found)
        drops.extend(dropped)
    return anomalies, drops


def gse(kind, **extra):
    return {
        "server": "127.0.0.9",
        "utctime2": "2024-05-01 08:00:00",
        "value": [{"event_time": "2024-05-01 16:00:00", "extra": {"type": kind, **extra}}],
    }


CUSTOM = {
    "_server_": "127.0.0.1",
    "_cloudid_": 0,
    "_utctime_": "2024-05-01 08:00:00",
    "_value_": ["nginx down"],
}


def test_custom_event_clean_is_bkmonitors_element():
    [anomaly], drops = run(CUSTOM, strategy(31, "gse_custom_event"))
    assert drops == []
    assert anomaly.element == {
        "data": {
            "time": T,
            "value": "nginx down",
            "values": {"time": T, "value": "nginx down"},
            "dimensions": DIMS,
            "record_id": f"{MD5}.{T}",
            "dimension_fields": ["bk_target_ip", "bk_target_cloud_id"],
        },
        "anomaly": {
            "2": {
                "anomaly_id": f"{MD5}.{T}.31.310.2",
                "anomaly_time": "2024-05-01 08:00:03",
                "anomaly_message": "nginx down",
            }
        },
        "strategy_snapshot_key": f"{P}.cache.strategy.snapshot.31.1714000000",
    }
    assert (anomaly.dimension_md5, anomaly.event_time, anomaly.level) == (MD5, T, 2)


@pytest.mark.parametrize(
    ("host", "md5", "version"),
    [
        ({"cloudid": 0, "agent_id": "0:127.0.0.1"}, MD5_V1, "v1"),
        ({"cloudid": 0, "agent_id": "0200000000000000000000000000000a"}, MD5_V2, "v2"),
        ({"cloudid": 0, "ip": "127.0.0.1"}, MD5_V1, "v1"),
    ],
)
def test_agent_event_by_v1_v2_agent_id_or_ip(host, md5, version):
    [anomaly], _ = run(gse(2, host=[host]), strategy(32, "agent-gse", level=1))
    data = anomaly.element["data"]
    assert data["dimensions"] == {**DIMS, "agent_version": version}
    assert data["record_id"] == f"{md5}.{T}"
    assert data["dimension_fields"] == ["bk_target_ip", "bk_target_cloud_id", "agent_version"]
    assert anomaly.element["anomaly"]["1"]["anomaly_message"] == "GSE AGENT 失联"


def test_disk_full_adds_its_dimensions_to_the_copy_only():
    extra = {
        "host": "127.0.0.1",
        "cloudid": 0,
        "disk": "/data",
        "free": 3,
        "file_system": "/dev/vdb1",
        "fstype": "ext4",
    }
    [anomaly], _ = run(gse(6, **extra), strategy(33, "disk-full-gse"))
    data = anomaly.element["data"]
    assert data["record_id"] == f"{MD5}.{T}"
    assert data["dimensions"] == {
        **DIMS,
        "disk": "/data",
        "file_system": "/dev/vdb1",
        "fstype": "ext4",
    }
    assert data["dimension_fields"][2:] == ["file_system", "fstype", "disk"]
    assert anomaly.element["anomaly"]["2"]["anomaly_message"] == "磁盘(/data)剩余空间只有3%"


def test_disk_readonly_keeps_entries_of_watched_types():
    ro = [
        {"position": "/data", "type": "ext4", "fs": "/dev/vdb"},
        {"position": "/mnt/cd", "type": "iso9660", "fs": "/dev/sr0"},
    ]
    [anomaly], _ = run(gse(3, host="127.0.0.1", ro=ro), strategy(34, "disk-readonly-gse"))
    data = anomaly.element["data"]
    assert data["record_id"] == f"{MD5}.{T}"
    assert data["dimensions"] == {**DIMS, "position": "/data", "type": "ext4", "fs": "/dev/vdb"}
    message = anomaly.element["anomaly"]["2"]["anomaly_message"]
    assert message == "磁盘(/dev/vdb-ext4(/data))只读告警"
    only_ignored = [ro[1]]
    assert run(gse(3, host="127.0.0.1", ro=only_ignored), strategy(34, "disk-readonly-gse")) == (
        [],
        ["ignored_readonly"],
    )


def test_ping_fans_out_per_ip_and_keeps_known_same_business_pairs():
    ping = strategy(38, "ping-gse", level=1)
    [anomaly], drops = run(
        gse(8, host="127.0.0.1", cloudid=0, iplist=["127.0.0.1", "127.0.0.99"]), ping
    )
    assert anomaly.element["anomaly"]["1"]["anomaly_message"] == "Ping不可达"
    assert drops == ["unknown_host"]
    assert run(gse(8, host="127.0.0.4", cloudid=2, iplist=["127.0.0.6"]), ping)[1] == []
    assert run(gse(8, host="127.0.0.5", cloudid=2, iplist=["127.0.0.6"]), ping)[1] == ["ping_scope"]
    assert run(gse(8, host="127.0.0.7", cloudid=2, iplist=["127.0.0.6"]), ping)[1] == ["ping_scope"]


def test_fan_out_to_every_matching_strategy_of_the_business_by_priority():
    strategies = [
        strategy(41, "gse_custom_event", priority=1),
        strategy(42, "gse_custom_event", priority=5),
        strategy(43, "gse_custom_event", biz=3),
        strategy(44, "disk-full-gse"),
        {
            **strategy(45, "gse_custom_event"),
            "items": [
                {
                    "id": 1,
                    "query_configs": [
                        {
                            "data_source_label": "bk_monitor",
                            "data_type_label": "time_series",
                            "metric_id": "bk_monitor.gse_custom_event",
                        }
                    ],
                }
            ],
        },
    ]
    anomalies, drops = run(CUSTOM, *strategies)
    assert [a.strategy.id for a in anomalies] == [42, 41]
    assert drops == []
    assert run({**CUSTOM, "_server_": "127.0.0.99"}, *strategies) == ([], ["unknown_host"])
    assert run(CUSTOM, strategy(46, "ping-gse")) == ([], ["no_strategy"])


def test_expiry_at_30_minutes():
    custom = strategy(51, "gse_custom_event")
    assert len(run(CUSTOM, custom, now=T + 1800)[0]) == 1
    assert run(CUSTOM, custom, now=T + 1801) == ([], ["expired"])


def test_host_status():
    disabled = {**CUSTOM, "_server_": "127.0.0.3"}
    assert run(disabled, strategy(52, "gse_custom_event")) == ([], ["host_disabled"])


def topo(method, inst):
    return [[{"field": "host_topo_node", "method": method, "value": [topo_node(inst)]}]]


def topo_node(inst):
    return {"bk_obj_id": "set", "bk_inst_id": inst}


ADDRESS = {"bk_target_ip": "127.0.0.1", "bk_target_cloud_id": 0}


@pytest.mark.parametrize(
    ("target", "kept"),
    [
        ([[{"field": "ip", "method": "eq", "value": [ADDRESS]}]], True),
        ([[{"field": "bk_target_ip", "method": "eq", "value": [{"bk_host_id": 3}]}]], False),
        (topo("eq", 5), True),
        (topo("eq", 6), False),
        (topo("neq", 6), True),
    ],
)
def test_range_filter_on_item_target(target, kept):
    anomalies, drops = run(CUSTOM, strategy(53, "gse_custom_event", target=target))
    assert (len(anomalies), drops) == ((1, []) if kept else (0, ["out_of_range"]))


@pytest.mark.parametrize(("disk", "kept"), [("/data", True), ("/", False)])
def test_condition_filter_on_filter_dimensions(disk, kept):
    condition = [{"key": "disk", "method": "eq", "value": ["/data"]}]
    message = gse(6, host="127.0.0.1", disk=disk, free=3, fstype="ext4")
    anomalies, drops = run(message, strategy(54, "disk-full-gse", agg_condition=condition))
    assert (len(anomalies), drops) == ((1, []) if kept else (0, ["condition"]))


@pytest.mark.parametrize(
    ("fstype", "file_system", "free", "kept"),
    [
        ("ext4", "/dev/vda1", 3, True),
        ("tmpfs", "/dev/vda1", 3, False),
        ("ext4", "/dev/loop0", 3, False),
        (None, "dev/sr0", 3, False),
        ("ext4", "/data/images/centos.iso", 3, False),
        ("ext4", "/data/iso/disk1", 3, True),
        ("ext4", "/mnt/dev/loop0", 3, True),
        ("tmpfs", "/dev/loop0", 101, True),
        ("tmpfs", "/dev/loop0", "3", True),
    ],
)
def test_disk_full_filter(fstype, file_system, free, kept):
    """``DiskFullFilter`` (``records/disk_full.py``): with ``free`` a number in 0..100, an
    ignored ``fstype`` or a ``file_system`` that ``re.match``es one of
    ``DISK_FILTER_CONDITION_LIST_V1``'s regexes (``config/default.py``) drops the record. A
    ``free`` that is not a number keeps it (bkmonitor's comparison would raise)."""
    extra = {"fstype": fstype} if fstype else {}
    message = gse(6, host="127.0.0.1", disk="/run", free=free, file_system=file_system, **extra)
    anomalies, drops = run(message, strategy(55, "disk-full-gse"))
    assert (len(anomalies), drops) == ((1, []) if kept else (0, ["ignored_fstype"]))


def test_md5_vectors():
    assert parse_time("2024-05-01 08:00:00") == T
    [custom], _ = run(CUSTOM, strategy(56, "gse_custom_event"))
    assert custom.dimension_md5 == MD5


@pytest.mark.parametrize(
    ("when", "reason"),
    [
        (T * 1000, Reason.MILLISECOND_TIME),
        (str(T * 1000), Reason.MILLISECOND_TIME),
        ("1999-12-31 23:59:59", Reason.ANCIENT_TIME),
        ("2024-05-01 10:00:01", Reason.FUTURE_TIME),
        ("9999-12-31 23:59:59", Reason.FUTURE_TIME),
        (2**63 - 1, Reason.OUT_OF_RANGE),
    ],
)
def test_times_outside_the_window_are_rejected_with_their_reason(when, reason):
    window = TimeWindow(30 * 86400, 3600)
    with pytest.raises(Rejected) as caught:
        checked_records({**CUSTOM, "_utctime_": when}, "zh", window, NOW)
    assert caught.value.reason is reason


def test_an_expired_time_is_left_for_access_to_drop():
    window = TimeWindow(600, 3600)
    _, [record] = checked_records(CUSTOM, "zh", window, T + 7200)
    assert run(CUSTOM, strategy(57, "gse_custom_event"), now=T + 7200) == ([], ["expired"])
    assert record["_time_"] == CUSTOM["_utctime_"]


@pytest.mark.parametrize(("group", "kept"), [("g-2", True), ("g-other", False), ("g-none", False)])
def test_dynamic_group_targets_use_the_group_table(group, kept):
    """``TargetCondition``'s ``dynamic_group`` branch: the group's host ids, matched as
    ``bk_target_ip`` by ``bk_host_id`` (host 2 is 127.0.0.1, the custom event's host)."""
    groups = parse_dynamic_groups(
        {
            "g-2": {"bk_obj_id": "host", "bk_inst_ids": [2, 5]},
            "g-other": {"bk_obj_id": "host", "bk_inst_ids": [5]},
        }
    )
    target = [[{"field": "dynamic_group", "method": "eq", "value": [{"dynamic_group_id": group}]}]]
    index = EventStrategies(
        parse_strategies([strategy(58, "gse_custom_event", target=target)]), groups
    )
    [record] = flat_event(CUSTOM)[1]
    anomalies, drops = access(record, HOSTS, index, P, NOW)
    assert (len(anomalies), drops) == ((1, []) if kept else (0, ["out_of_range"]))


class Text(str):
    """A string that :func:`parse_time` reads afresh (it remembers plain strings only)."""


SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=8)
    | st.datetimes()
    | st.builds(Text, st.text(max_size=8))
)
JSONISH = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)


@given(st.lists(st.dictionaries(st.text(max_size=4), JSONISH, max_size=4), max_size=6))
def test_remembered_dimension_digests_are_count_md5s(all_dims):
    """bkmonitor's ``count_md5`` (``bkmonitor/utils/common_utils.py``) for any dimensions, seen
    once or again: 1 and 1.0 and True, a tuple and a list, NaN and None, a datetime and a str
    subclass (which orjson would write as JSON strings) among them."""
    for dims in all_dims + all_dims:
        assert dimensions_md5(dims) == count_md5(dims)


def _read(value: str) -> int | Reason:
    try:
        return parse_time(value)
    except Rejected as exc:
        return exc.reason


@given(st.lists(st.integers(0, 10**10) | st.text(max_size=24), max_size=6))
def test_remembered_times_read_as_read_afresh(values):
    """A time string read (or an epoch written) again gives what reading it afresh gives, and
    one that failed fails again with the same reason."""
    texts = [format_time(v) if isinstance(v, int) else v for v in values]
    for value in texts + texts:
        assert _read(value) == _read(Text(value))
    for value in values:
        if isinstance(value, int):
            assert format_time(value) == datetime.fromtimestamp(value, UTC).strftime(TIME_FORMAT)
