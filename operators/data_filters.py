"""Data access filters, priority and the static-threshold check (bkmonitor's
``alarm_backends/service/access/data/filters.py`` and ``processor.py``), as pure functions
over records and hash snapshots."""

from __future__ import annotations

import time as _time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from operators.conditions import ConditionSet, compile_conditions, mapping_lookup
from operators.hosts import HostIndex
from operators.targets import target_match

MIN_EXPIRE_S = 1800
ADVANCED_METHODS = ("reg", "nreg", "include", "exclude")


def expire_window(interval: int) -> int:
    """``ExpireFilter``'s window: ``max(10 * interval, 1800)`` seconds."""
    return max(10 * interval, MIN_EXPIRE_S)


def is_expired(record_time: int, now: float, interval: int) -> bool:
    return now - record_time > expire_window(interval)


class HostStatus(StrEnum):
    KEEP = "keep"
    UNKNOWN = "unknown_host"
    DISABLED = "host_disabled"


def host_status(dimensions: Mapping[str, Any], hosts: HostIndex) -> HostStatus:
    """``HostStatusFilter``: no host dimension → keep; empty or unknown host → drop
    (``UNKNOWN``); a host whose state disables monitoring → kept, retained by no item."""
    if "bk_host_id" not in dimensions and "bk_target_ip" not in dimensions:
        return HostStatus.KEEP
    host_id, ip = dimensions.get("bk_host_id"), dimensions.get("bk_target_ip")
    if not host_id and not ip:
        return HostStatus.UNKNOWN
    if host_id:
        host = hosts.by_id(host_id)
    elif "bk_target_cloud_id" in dimensions:
        host = hosts.by_address(ip, dimensions.get("bk_target_cloud_id"))
    else:
        return HostStatus.KEEP
    if host is None:
        return HostStatus.UNKNOWN
    return HostStatus.DISABLED if host.ignore_monitoring else HostStatus.KEEP


FILE_SYSTEM_TYPE_IGNORE = ("iso9660", "tmpfs", "udf")
"""bkmonitor's ``settings.FILE_SYSTEM_TYPE_IGNORE`` (``config/default.py``)."""
ETH_IGNORE = ("lo",)
"""The ``sql_statement`` of bkmonitor's ``settings.ETH_FILTER_CONDITION_LIST``."""
BUILTIN_FIELDS = {
    "system.disk": ("device_type", FILE_SYSTEM_TYPE_IGNORE),
    "system.net": ("device_name", ETH_IGNORE),
}
"""``FILE_SYSTEM_TYPE_RT_ID`` / ``SYSTEM_NET_GROUP_RT_ID``: the field and the values left out."""


def builtin_conditions(config: Mapping[str, Any]) -> ConditionSet:
    """``Item.extra_agg_condition_obj``: for bkmonitor collector time series of ``system.disk``
    (``_is_system_disk``) and ``system.net`` (``_is_system_net``), one AND group of ``neq``
    conditions; nothing for any other query."""
    if (config.get("data_source_label"), config.get("data_type_label")) != (
        "bk_monitor",
        "time_series",
    ):
        return ConditionSet(())
    field, ignored = BUILTIN_FIELDS.get(str(config.get("result_table_id") or ""), ("", ()))
    return compile_conditions([{"key": field, "method": "neq", "value": [v]} for v in ignored])


def plain_conditions(config: Mapping[str, Any]) -> ConditionSet:
    """What the TSDB itself applies for a data-access query: the ``agg_condition`` without
    the advanced methods (``query_data`` clears ``_advance_where``), and the built-in ones."""
    raw = config.get("agg_condition") or ()
    groups = compile_conditions([c for c in raw if c.get("method") not in ADVANCED_METHODS])
    builtin = builtin_conditions(config).groups
    extra = builtin[0] if builtin else ()
    combined = tuple(g + extra for g in groups.groups or ((),))
    return ConditionSet(tuple(g for g in combined if g))


@dataclass(frozen=True)
class RangeMatcher:
    """``Item.is_range_match``: target, for REAL_TIME or advanced conditions the first query
    config's ``agg_condition``, and the built-in disk/net conditions."""

    target: tuple[tuple[Mapping[str, Any], ...], ...]
    conditions: ConditionSet
    builtin: ConditionSet

    @classmethod
    def for_item(cls, raw_item: Mapping[str, Any]) -> RangeMatcher:
        configs = raw_item.get("query_configs") or [{}]
        first = configs[0]
        raw_conditions = first.get("agg_condition") or []
        applies = first.get("agg_method") == "REAL_TIME" or any(
            c.get("method") in ADVANCED_METHODS for c in raw_conditions
        )
        target = tuple(tuple(group) for group in raw_item.get("target") or ())
        builtin = next((b for b in map(builtin_conditions, configs) if b.groups), ConditionSet(()))
        return cls(target, compile_conditions(raw_conditions if applies else []), builtin)

    def matches(self, dimensions: Mapping[str, Any]) -> bool:
        lookup = mapping_lookup(dimensions)
        return (
            target_match(self.target, dimensions)
            and self.conditions.matches(lookup)
            and self.builtin.matches(lookup)
        )


THRESHOLD_METHODS = {
    "gt": lambda v, t: v > t,
    "gte": lambda v, t: v >= t,
    "lt": lambda v, t: v < t,
    "lte": lambda v, t: v <= t,
    "eq": lambda v, t: v == t,
    "neq": lambda v, t: v != t,
}


def threshold_hit(config: Any, value: Any) -> bool:
    """bkmonitor's ``Threshold``: ``[[{method, threshold}, ...], ...]``, OR of AND groups."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    for group in config or ():
        conds = [c for c in group if c.get("method") in THRESHOLD_METHODS]
        if conds and all(
            THRESHOLD_METHODS[c["method"]](number, float(c.get("threshold", 0))) for c in conds
        ):
            return True
    return False


def anomaly_levels(algorithms: Sequence[Mapping[str, Any]], value: Any) -> list[int]:
    """Levels, ascending, whose Threshold algorithm the value hits."""
    return sorted(
        {int(a.get("level", 1)) for a in algorithms if threshold_hit(a.get("config"), value)}
    )


def anomaly_record(
    data: Mapping[str, Any], levels: Sequence[int], sid: int, iid: int, snapshot_key: str
) -> dict[str, Any]:
    """The anomaly element detect writes (§6); ``anomaly_time`` is the data time in UTC."""
    when = _time.strftime("%Y-%m-%d %H:%M:%S", _time.gmtime(data["time"]))
    return {
        "data": data,
        "anomaly": {
            str(level): {
                "anomaly_message": f"value {data['value']} hits the level {level} threshold",
                "anomaly_id": f"{data['record_id']}.{sid}.{iid}.{level}",
                "anomaly_time": when,
                "context": {},
            }
            for level in levels
        },
        "strategy_snapshot_key": snapshot_key,
    }
