"""Event records against bkmonitor's own fixtures.

Inputs and expectations come from ``bkmonitor/alarm_backends/tests/service/access/event/
config.py`` as used by ``test_records.py`` (``TestGseEventRecords``, ``TestCustomEventRecords``,
``TestGseProcessEventRecords``), with ``HOST_OBJECT`` as the host (id 2, 127.0.0.1, cloud 0,
business 2, topo module 9 / set 5 / test 2 / biz 2). Where a fixture and bkmonitor's code
disagree, the expectation follows the code, and the test says why.
"""

# bkmonitor's texts use full-width punctuation on purpose.
# ruff: noqa: RUF001

from __future__ import annotations

import pytest

from operators.event import EventStrategies, access
from operators.event_records import flat_event, parse_time
from operators.hosts import parse_hosts
from operators.md5 import count_md5
from operators.strategy import parse_strategies

P = "bk_bkmonitorv3.ee"
T = 1714550400  # 2024-05-01 08:00:00 UTC
TOPO = {
    "module|9": [
        {"bk_obj_id": o, "bk_inst_id": i}
        for o, i in (("module", 9), ("set", 5), ("test", 2), ("biz", 2))
    ]
}
HOST_OBJECT = {
    "bk_host_id": 2,
    "bk_host_innerip": "127.0.0.1",
    "bk_cloud_id": 0,
    "bk_biz_id": 2,
    "topo_link": TOPO,
}
HOSTS = parse_hosts(
    [HOST_OBJECT, {**HOST_OBJECT, "bk_host_id": 11, "bk_host_innerip": "127.0.0.11"}]
)
HOST_DIMS = {
    "bk_host_id": 2,
    "bk_target_cloud_id": 0,
    "bk_target_ip": "127.0.0.1",
    "bk_topo_node": ["biz|2", "module|9", "set|5", "test|2"],
}
HOST_MD5 = "990d2ce882caacb380df66462c847d9a"
"""``record_id`` prefix of every fixture whose dimensions are the host's alone (CUSTOM_STR,
DISK_FULL, DISK_READ_ONLY, PING)."""


def strategy(sid: int, iid: int, metric: str, level: int) -> dict:
    return {
        "id": sid,
        "bk_biz_id": 2,
        "update_time": 1572868513,
        "items": [
            {
                "id": iid,
                "algorithms": [{"level": level}],
                "query_configs": [
                    {
                        "data_source_label": "bk_monitor",
                        "data_type_label": "event",
                        "metric_id": f"bk_monitor.{metric}",
                    }
                ],
            }
        ],
    }


def clean(message: dict, config: dict, now: float) -> tuple[dict, dict]:
    """The one anomaly of ``message``: its ``data`` and its ``anomaly`` entry."""
    index = EventStrategies(parse_strategies([config]))
    [record] = flat_event(message)[1]
    [anomaly], drops = access(record, HOSTS, index, P, now)
    assert drops == []
    [entry] = anomaly.element["anomaly"].values()
    return dict(anomaly.element["data"]), entry


def gse(kind: int, **extra) -> dict:
    """A GSE base alarm as the fixtures give them; ``utctime2`` is ``str(naive utc now)``,
    which has microseconds (here .654321, cut to the second as arrow's ``timestamp``)."""
    return {
        "utctime2": "2024-05-01 08:00:00.654321",
        "server": "127.0.0.1",
        "value": [{"event_title": "", "extra": {"type": kind, "bizid": 0, "cloudid": 0, **extra}}],
    }


def test_process_event_is_gse_process_event_data_clean():
    """GSE_PROCESS_EVENT_DATA → GSE_PROCESS_EVENT_DATA_CLEAN: the process dimensions (with
    ``event_name``) are part of the record id: ``53125324982b76cb0553900830ee940a``."""
    message = {
        "data": [
            {
                "dimension": {
                    "bk_target_cloud_id": "0",
                    "bk_target_ip": "127.0.0.1",
                    "process_group_id": "nodeman",
                    "process_index": "nodeman:bkmonitorbeat",
                    "process_name": "bkmonitorbeat",
                },
                "event": {"content": "check bkmonitorbeat not running, and restart it success"},
                "event_name": "process_restart_success",
                "target": "10.0.1.10|0",
                "timestamp": 1619171000,
            }
        ],
        "data_id": 1100008,
    }
    data, anomaly = clean(message, strategy(31, 449, "gse_process_event", 2), 1619171 + 5)
    title = (
        "事件类型: 进程重启成功, 事件内容: check bkmonitorbeat not running, and restart it success"
    )
    assert data == {
        "time": 1619171,
        "value": title,
        "values": {"time": 1619171, "value": title},
        "dimensions": {
            **HOST_DIMS,
            "process_group_id": "nodeman",
            "process_index": "nodeman:bkmonitorbeat",
            "process_name": "bkmonitorbeat",
            "event_name": "process_restart_success",
            "agent_version": "v1",
        },
        "dimension_fields": [
            "bk_target_ip",
            "bk_target_cloud_id",
            "agent_version",
            "process_group_id",
            "process_name",
        ],
        "record_id": "53125324982b76cb0553900830ee940a.1619171",
    }
    assert anomaly["anomaly_id"] == "53125324982b76cb0553900830ee940a.1619171.31.449.2"
    assert anomaly["anomaly_message"] == title


def test_custom_string_event_is_custom_str_data_clean():
    """CUSTOM_STR_DATA → CUSTOM_STR_DATA_CLEAN, with ``_utctime_`` in microseconds."""
    message = {
        "_bizid_": 0,
        "_cloudid_": 0,
        "_server_": "127.0.0.1",
        "_time_": "2024-05-01 16:00:00",
        "_utctime_": "2024-05-01 08:00:00.654321",
        "_value_": ["This service is offline"],
    }
    data, anomaly = clean(message, strategy(31, 53, "gse_custom_event", 2), T + 3)
    assert data == {
        "record_id": f"{HOST_MD5}.{T}",
        "values": {"value": "This service is offline", "time": T},
        "dimensions": HOST_DIMS,
        "dimension_fields": ["bk_target_ip", "bk_target_cloud_id"],
        "value": "This service is offline",
        "time": T,
    }
    assert anomaly == {
        "anomaly_message": "This service is offline",
        "anomaly_time": "2024-05-01 08:00:03",
        "anomaly_id": f"{HOST_MD5}.{T}.31.53.2",
    }


def test_disk_full_is_disk_full_data_clean():
    """DISK_FULL_DATA → DISK_FULL_DATA_CLEAN. The fixture's extra has no ``host``, which
    ``flat()`` reads with ``alarm["extra"]["host"]`` (its test mocks the host lookup, not that),
    and its expected dimensions lack ``bk_target_ip``, which ``full()`` always sets: the code
    wins on both."""
    extra = {"used_percent": 93, "free": 7, "fstype": "ext4", "disk": "/"}
    message = gse(6, host="127.0.0.1", file_system="/dev/vda1", **extra)
    data, anomaly = clean(message, strategy(31, 64, "disk-full-gse", 3), T + 3)
    assert data["record_id"] == f"{HOST_MD5}.{T}"
    assert data["dimensions"] == {
        **HOST_DIMS,
        "disk": "/",
        "file_system": "/dev/vda1",
        "fstype": "ext4",
    }
    assert data["dimension_fields"] == [
        "bk_target_ip",
        "bk_target_cloud_id",
        "file_system",
        "fstype",
        "disk",
    ]
    assert anomaly["anomaly_message"] == "磁盘(/)剩余空间只有7%"
    assert anomaly["anomaly_id"] == f"{HOST_MD5}.{T}.31.64.3"


def test_corefile_record_id_includes_the_additional_dimensions():
    """COREFILE_DATA → COREFILE_DATA_CLEAN's dimensions and text. Its record id
    (``990d2ce8…``, the host's dimensions alone) disagrees with the code: ``clean()`` computes
    ``data.dimensions`` (``clean_dimensions`` adds ``__additional_dimensions`` to the record's
    own dimensions) before ``record_id``, whose md5 is then taken of them."""
    message = gse(7, host="127.0.0.1", corefile="/data/corefile/core_101041_2019-11-04")
    message["value"][0]["extra"]["filesize"] = "0"
    data, anomaly = clean(message, strategy(31, 57, "corefile-gse", 1), T + 3)
    dims = {
        **HOST_DIMS,
        "__additional_dimensions": {"corefile": "/data/corefile/core_101041_2019-11-04"},
    }
    assert data["dimensions"] == dims
    assert data["record_id"] == f"{count_md5(dims)}.{T}"
    assert data["dimension_fields"] == [
        "bk_target_ip",
        "bk_target_cloud_id",
        "executable_path",
        "executable",
        "signal",
    ]
    assert anomaly["anomaly_message"] == "产生corefile：/data/corefile/core_101041_2019-11-04"


@pytest.mark.parametrize(
    ("extra", "added", "text"),
    [
        (
            {"executable": "test", "executable_path": "/tmp/test", "signal": "SIGFPE"},
            {"executable": "test", "executable_path": "/tmp/test", "signal": "SIGFPE"},
            "test进程因为SIGFPE异常信号产生corefile：/data/core.1",
        ),
        (
            {"executable": "test", "signal": ""},
            {"executable": "test"},
            "test进程产生corefile：/data/core.1",
        ),
        (
            {"signal": "SIGSEGV"},
            {"signal": "SIGSEGV"},
            "进程因为SIGSEGV异常信号产生corefile：/data/core.1",
        ),
    ],
)
def test_corefile_adds_only_its_non_empty_fields(extra, added, text):
    """``CorefileEvent.clean_dimensions``: only the non-empty executable path, executable and
    signal (the class docstring's sample has all three); ``clean_anomaly_message``'s four
    texts."""
    message = gse(7, host="127.0.0.1", corefile="/data/core.1", **extra)
    data, anomaly = clean(message, strategy(31, 57, "corefile-gse", 1), T + 3)
    dims = {**HOST_DIMS, **added, "__additional_dimensions": {"corefile": "/data/core.1"}}
    assert data["dimensions"] == dims
    assert data["record_id"] == f"{count_md5(dims)}.{T}"
    assert anomaly["anomaly_message"] == text


OOM_EXTRA = {
    "host": "127.0.0.1",
    "total": 3,
    "process": "oom/java/consul",
    "message": "total-vm:44687536kB, anon-rss:32520504kB, file-rss:0kB, shmem-rss:0kB",
    "oom_memcg": "oom_cgroup_path",
    "task_memcg": "oom_cgroup_task",
    "task": "process_name",
    "constraint": "CONSTRAINT_MEMCG",
}
"""``OOMEvent``'s docstring sample, also used by ``test_filters.py``'s ``test_filter_dimension``."""


def test_oom_adds_every_non_empty_filter_dimension_but_process():
    """``OOMEvent.clean_dimensions``: ``message`` and the ``oom_*``, ``task*`` and
    ``constraint`` fields enter the dimensions (and so the record id); ``process`` goes under
    ``__additional_dimensions`` only."""
    data, anomaly = clean(gse(9, **OOM_EXTRA), strategy(31, 60, "oom-gse", 2), T + 3)
    dims = {
        **HOST_DIMS,
        **{k: OOM_EXTRA[k] for k in ("message", "oom_memcg", "task_memcg", "task", "constraint")},
        "__additional_dimensions": {"process": "oom/java/consul"},
    }
    assert data["dimensions"] == dims
    assert data["record_id"] == f"{count_md5(dims)}.{T}"
    assert data["dimension_fields"] == ["bk_target_ip", "bk_target_cloud_id"]
    assert anomaly["anomaly_message"] == (
        "发现OOM异常事件发生（进程:oom/java/consul），共OOM次数3次, "
        "信息:total-vm:44687536kB, anon-rss:32520504kB, file-rss:0kB, shmem-rss:0kB"
    )


def test_ooms_with_other_messages_are_other_series_and_empty_fields_stay_out():
    first, _ = clean(gse(9, **OOM_EXTRA), strategy(31, 60, "oom-gse", 2), T + 3)
    other = {**OOM_EXTRA, "message": "total-vm:1kB", "task": ""}
    second, _ = clean(gse(9, **other), strategy(31, 60, "oom-gse", 2), T + 3)
    assert first["record_id"] != second["record_id"]
    assert "task" not in second["dimensions"]


def test_disk_readonly_keeps_the_watched_entries_and_takes_the_first():
    """DISK_READ_ONLY_DATA. ``test_records.py`` calls ``clean()`` without the filters; the
    processor runs ``DiskReadonlyFilter`` first, which drops the tmpfs entry. The fixture's
    joined position/type/fs predate the code's ``clean_dimensions``, which sets them from the
    first ``ro`` entry (the code wins)."""
    ro = [
        {"position": r"\/sys\/fs\/cgroup", "fs": "tmpfs", "type": "tmpfs"},
        {"position": r"\/readonly_disk", "fs": r"dev\/vdb", "type": "ext4"},
    ]
    data, anomaly = clean(
        gse(3, host="127.0.0.1", ro=ro), strategy(31, 55, "disk-readonly-gse", 2), T
    )
    assert data["record_id"] == f"{HOST_MD5}.{T}"
    assert data["dimensions"] == {
        **HOST_DIMS,
        "position": r"\/readonly_disk",
        "fs": r"dev\/vdb",
        "type": "ext4",
    }
    assert data["dimension_fields"] == [
        "bk_target_ip",
        "bk_target_cloud_id",
        "position",
        "type",
        "fs",
    ]
    assert anomaly["anomaly_message"] == r"磁盘(dev\/vdb-ext4(\/readonly_disk))只读告警"


def test_ping_is_ping_unreach_data_clean():
    """PING_UNREACH_DATA → PING_UNREACH_DATA_CLEAN: one record per unreachable IP; the ping
    server (127.0.0.11) and the target are known hosts of the same cloud."""
    message = gse(8, host="127.0.0.11", iplist=["127.0.0.1", "127.0.0.16"], count=30)
    del message["utctime2"]
    message["value"][0]["event_time"] = "2024-05-01 08:00:00.654321"
    index = EventStrategies(parse_strategies([strategy(35, 58, "ping-gse", 1)]))
    first, second = flat_event(message)[1]
    [anomaly], drops = access(first, HOSTS, index, P, T + 3)
    assert (drops, access(second, HOSTS, index, P, T + 3)) == ([], ([], ["unknown_host"]))
    assert anomaly.element["data"]["record_id"] == f"{HOST_MD5}.{T}"
    assert anomaly.element["anomaly"]["1"] == {
        "anomaly_message": "Ping不可达",
        "anomaly_time": "2024-05-01 08:00:03",
        "anomaly_id": f"{HOST_MD5}.{T}.35.58.1",
    }


def test_english_texts_are_bkmonitors_catalogue():
    """``language="en"``: the ``msgstr`` of bkmonitor's ``locale/en/LC_MESSAGES/django.po``."""
    index = EventStrategies(parse_strategies([strategy(31, 64, "disk-full-gse", 3)]))
    [record] = flat_event(gse(6, host="127.0.0.1", disk="/", free=7, file_system="/dev/vda1"))[1]
    [anomaly], _ = access(record, HOSTS, index, P, T + 3, "en")
    assert anomaly.element["anomaly"]["3"]["anomaly_message"] == "Disk (/) space remaining only 7%"
    process = {
        "data_id": 1100008,
        "data": [{"dimension": {}, "event_name": "process_restart_failed", "timestamp": 0}],
    }
    [record] = flat_event(process, "en")[1]
    assert record["_title_"] == "Event type: Process restart failed, event content: None"


@pytest.mark.parametrize(
    ("text", "epoch"),
    [
        ("2024-05-01 08:00:00", T),
        ("2024-05-01 08:00:00.654321", T),
        ("2024-05-01T08:00:00.5", T),
        ("2024-05-01T16:00:00+08:00", T),
        ("2024-05-01 08:00", T),
        ("2024-05-01", T - 8 * 3600),
        ("1714550400", T),
        ("1714550400.9", T),
        (1714550400.9, T),
        (T, T),
    ],
)
def test_times_as_arrow_reads_them(text, epoch):
    """``EventRecord.event_time`` is ``arrow.get(_time_).timestamp`` (arrow 0.6: numbers and
    numeric strings are epoch seconds, other strings ISO 8601, UTC unless offset; whole
    seconds)."""
    assert parse_time(text) == epoch
