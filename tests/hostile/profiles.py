"""Per flow: its module, input kind, valid messages (in the order they must be read) and the
template the mutants are made from (a valid message whose identity no valid message shares)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from tests.flows.test_alert import alert

NOW = int(time.time()) // 120 * 120 - 1200
"""Twenty minutes ago, on a two-minute boundary: inside every flow's time window."""


def _utc(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True)
class Profile:
    """How to feed one flow."""

    name: str
    kind: str
    valid: tuple[dict[str, Any], ...]
    template: dict[str, Any]
    outputs: tuple[str, ...] = ()
    """Kafka output topics the flow needs besides the DLQ, as ``ALARMFLOW_<NAME>`` settings."""

    @property
    def module(self) -> str:
        return f"flows.{self.name}"

    def valid_messages(self) -> list[bytes]:
        return [orjson.dumps(message) for message in self.valid]


def _alert(event_id: str, at: int, **fields: Any) -> dict[str, Any]:
    return alert(event_id, time=at, severity=2, tags=[{"key": "mount", "value": "/data"}], **fields)


ALERT = Profile(
    "alert",
    "ALERT",
    tuple(
        _alert(f"cpu-{i}", NOW + i, **({"strategy_id": 201} if i % 3 == 0 else {}))
        for i in range(40)
    ),
    _alert("mutant", NOW + 7, strategy_id=201, status="recovered", dedupe_keys=["tags.mount"]),
)


def _gse(ip: str, at: int, kind: int, **extra: Any) -> dict[str, Any]:
    return {
        "server": ip,
        "utctime2": _utc(at),
        "value": [{"extra": {"type": kind, "host": ip, **extra}}],
    }


def _process(ip: str, at: int, name: str) -> dict[str, Any]:
    dimension = {"bk_target_ip": ip, "bk_target_cloud_id": "0", "process_name": "nginx"}
    entry = {"dimension": dimension, "event_name": name, "timestamp": at * 1000}
    return {"data_id": 1100008, "data": [entry]}


EVENT = Profile(
    "event",
    "EVENT",
    (
        *(
            _gse(f"10.0.0.{i}", NOW + i, 2, host=[{"bizid": 0, "cloudid": 0, "ip": f"10.0.0.{i}"}])
            for i in range(1, 9)
        ),
        *(_gse(f"10.0.0.{i}", NOW + i, 7, executable="nginx", signal="SIGSEGV") for i in (1, 2)),
        *(_gse(f"10.0.0.{i}", NOW + i, 9, process="java", message="oom") for i in (3, 4)),
        {"_server_": "10.0.0.5", "_cloudid_": 0, "_utctime_": _utc(NOW), "_value_": ["disk bad"]},
        *(_process(f"10.0.0.{i}", NOW + i, "process_exit") for i in (6, 7)),
    ),
    _gse("10.0.0.9", NOW + 30, 9, process="java", message="mutant oom"),
)


def _sync(incident: int, sync_type: str, status: str, at: int, **extra: Any) -> dict[str, Any]:
    return {
        "incident_id": incident,
        "sync_type": sync_type,
        "incident_info": {
            "bk_biz_id": 2,
            "status": status,
            "create_time": NOW,
            "update_time": at,
            "incident_name": f"incident {incident}",
            "level": "ERROR",
        },
        "fpp_snapshot_id": "fpp:None",
        "rca_time": at,
        "scope": {"bk_biz_ids": [2], "alerts": [f"a{incident}-{at}"], "events": []},
        **extra,
    }


INCIDENT = Profile(
    "incident",
    "INCIDENT",
    tuple(
        _sync(incident, "create" if step == 0 else "update", status, NOW + step)
        for step, status in enumerate(("abnormal", "recovering", "recovered"))
        for incident in range(8)
    ),
    _sync(
        90,
        "update",
        "recovered",
        NOW + 5,
        update_attributes={"status": {"from": "abnormal", "to": "recovered"}},
    ),
)


def _point(rt: str, ip: str, metrics: dict[str, Any], at: int, biz: int = 2) -> dict[str, Any]:
    dims = {"bk_biz_id": biz, "bk_target_ip": ip, "bk_target_cloud_id": "0"}
    return {"result_table_id": rt, "time": at, "dimensions": dims, "metrics": metrics}


CPU, MEM = "system.cpu_summary", "system.mem"

REAL_TIME_DATA = Profile(
    "real_time_data",
    "REAL_TIME_DATA",
    tuple(
        _point(CPU, f"10.0.0.{h}", {"usage": float(h + s)}, NOW + 60 * s)
        for s in range(3)
        for h in range(1, 11)
    ),
    _point(CPU, "10.0.0.20", {"usage": 50.5}, NOW + 30),
)

DATA = Profile(
    "data",
    "DATA",
    tuple(
        _point(rt, f"10.0.0.{h}", {metric: float(h + s)}, NOW + 60 * s)
        for s in range(3)
        for h in range(1, 11)
        for rt, metric in ((MEM, "pct_used"), (CPU, "usage"))
    ),
    _point(MEM, "10.0.0.20", {"pct_used": 99.5}, NOW + 60),
)


def _action(action_id: int, dim: int, at: int) -> dict[str, Any]:
    return {
        "id": action_id,
        "create_time": at,
        "strategy_id": 1000 + dim,
        "bk_biz_id": 2,
        "alert_level": 1,
        "signal": "abnormal",
        "action_config_id": 7,
        "plugin_type": "notice",
        "notice_way": "mail",
        "notice_receiver": ["user1"],
        "alerts": [{"id": f"alert{action_id}", "dimensions": [{"key": "ip", "value": str(dim)}]}],
        "converge_config": {
            "is_enabled": True,
            "converge_func": "skip_when_exceed",
            "timedelta": 300,
            "count": 2,
        },
    }


CONVERGE = Profile(
    "converge",
    "ACTION",
    tuple(_action(dim * 10 + k + 1, dim, NOW + 7 * k) for dim in range(8) for k in range(4)),
    _action(990, 99, NOW + 3),
    outputs=("DECISION_TOPIC", "AUDIT_TOPIC"),
)

PROFILES = (ALERT, EVENT, INCIDENT, REAL_TIME_DATA, DATA, CONVERGE)
