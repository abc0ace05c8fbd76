"""Event access after ``flat()``: host lookup and strategy fan-out (``full()``), bkmonitor's
filters in order, and ``clean()`` into the element trigger reads from
``detect.anomaly.list.{sid}.{iid}`` (bkmonitor.md §2.3).

:func:`access` takes one flat record to its anomalies and the reasons of every clone it
dropped. Anomaly messages are English renderings of bkmonitor's Chinese texts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from operators.conditions import ConditionSet, compile_conditions, mapping_lookup
from operators.event_records import (
    AGENT,
    COREFILE,
    CUSTOM,
    DISK_FULL,
    DISK_READONLY,
    OOM,
    PING,
    PROCESS,
    format_time,
    parse_time,
)
from operators.hosts import Host, HostIndex
from operators.md5 import count_md5
from operators.strategy import Strategy
from operators.targets import target_match
from state.keys import STRATEGY_SNAPSHOT_KEY

EXPIRE_SECONDS = 30 * 60
"""ExpireFilter: an event older than this is dropped."""
FILE_SYSTEM_TYPE_IGNORE = ("iso9660", "tmpfs", "udf")
DROP_REASONS = (
    "unknown_host",
    "no_strategy",
    "expired",
    "host_disabled",
    "out_of_range",
    "condition",
    "ignored_fstype",
    "ignored_readonly",
    "ping_scope",
)
"""Why :func:`access` drops a record or a strategy clone (the ``dropped`` metric's reasons)."""

METRIC_IDS = {
    AGENT: "bk_monitor.agent-gse",
    DISK_READONLY: "bk_monitor.disk-readonly-gse",
    DISK_FULL: "bk_monitor.disk-full-gse",
    COREFILE: "bk_monitor.corefile-gse",
    PING: "bk_monitor.ping-gse",
    OOM: "bk_monitor.oom-gse",
    CUSTOM: "bk_monitor.gse_custom_event",
    PROCESS: "bk_monitor.gse_process_event",
}
"""Each record class's ``METRIC_ID``: a strategy takes the events its first item names."""

DIMENSION_FIELDS = {
    COREFILE: ("executable_path", "executable", "signal"),
    DISK_FULL: ("file_system", "fstype", "disk"),
    DISK_READONLY: ("position", "type", "fs"),
    PROCESS: ("process_group_id", "process_name"),
}
OOM_OPTIONAL = ("oom_memcg", "task_memcg", "task", "constraint")


@dataclass(frozen=True)
class EventAnomaly:
    """One cleaned event record for one strategy item, with what its writes need."""

    strategy: Strategy
    item_id: int
    level: int
    target_ip: str
    dimension_md5: str
    event_time: int
    anomaly_id: str
    record_digest: str
    """md5 of the flat record (sorted JSON): what makes a record's writes happen once. Two
    different events can share an anomaly id (same host and second); both are kept, as
    bkmonitor keeps them."""
    element: Mapping[str, Any]
    """The ANOMALY_LIST element: ``{data, anomaly, strategy_snapshot_key}``."""


class EventStrategies:
    """The event strategies (first query config ``(bk_monitor, event)``) by business and by
    the metric id of their first item."""

    def __init__(self, strategies: Iterable[Strategy]) -> None:
        self._by: dict[tuple[int, str], list[Strategy]] = {}
        self._conditions: dict[int, ConditionSet] = {}
        for strategy in strategies:
            if strategy.source() != ("bk_monitor", "event"):
                continue
            first = strategy.items[0].query_configs[0]
            self._conditions[strategy.id] = compile_conditions(first.get("agg_condition"))
            for metric in strategy.items[0].metric_ids():
                self._by.setdefault((strategy.bk_biz_id, metric), []).append(strategy)

    def __len__(self) -> int:
        return len({s.id for group in self._by.values() for s in group})

    def matching(self, bk_biz_id: int, kind: int) -> list[Strategy]:
        return self._by.get((bk_biz_id, METRIC_IDS[kind]), [])

    def conditions(self, strategy: Strategy) -> ConditionSet:
        """The first query config's ``agg_condition``, compiled once."""
        return self._conditions[strategy.id]


def find_host(record: Mapping[str, Any], hosts: HostIndex) -> Host | None:
    """By agent id (a ``"cloud:ip"`` one split into address), else by ``(ip, cloud)``."""
    agent_id = record.get("_agent_id_")
    if agent_id:
        if ":" in agent_id:
            cloud, _, ip = agent_id.partition(":")
            return hosts.by_address(ip, cloud)
        return hosts.by_agent(agent_id)
    return hosts.by_address(record.get("_host_"), record.get("_cloudid_", 0))


def host_dimensions(record: Mapping[str, Any], host: Host) -> dict[str, Any]:
    """``full()``'s dimensions: target ip, cloud, host id, topo nodes, agent version."""
    dims: dict[str, Any] = {
        "bk_target_ip": host.ip,
        "bk_target_cloud_id": host.cloud_id,
        "bk_host_id": host.bk_host_id,
        "bk_topo_node": list(host.topo_nodes),
    }
    if "_agent_id_" in record:
        agent_id = record["_agent_id_"]
        dims["agent_version"] = "v2" if agent_id and ":" not in agent_id else "v1"
    return dims


def filter_dimensions(record: Mapping[str, Any], dims: Mapping[str, Any]) -> dict[str, Any]:
    """The per-type dimensions ``ConditionFilter`` matches and ``clean()`` adds."""
    kind, extra = record["_type_"], record["_extra_"]
    if kind == AGENT:
        return {"agent_version": dims["agent_version"]}
    if kind == COREFILE:
        return {
            k: extra.get(k, "") for k in ("corefile", "executable_path", "executable", "signal")
        }
    if kind == DISK_FULL:
        return {k: extra.get(k, "") for k in ("disk", "file_system", "fstype")}
    if kind == DISK_READONLY:
        entries = extra.get("ro") or []
        return {k: ",".join(str(e.get(k, "")) for e in entries) for k in ("position", "type", "fs")}
    if kind == OOM:
        found = {k: extra[k] for k in OOM_OPTIONAL if extra.get(k)}
        return {"process": extra.get("process", ""), "message": extra.get("message", ""), **found}
    if kind == PROCESS:
        keys = ("event_name", "process_index", "process_group_id", "process_name")
        return {
            **{k: record["dimensions"].get(k, "") for k in keys},
            "agent_version": dims["agent_version"],
        }
    return {}


def record_filter(record: Mapping[str, Any], host: Host, hosts: HostIndex) -> str | None:
    """The record-level filters: the drop reason, or None to keep."""
    kind, extra = record["_type_"], record["_extra_"]
    if kind == DISK_FULL:
        try:
            free_ok = 0 <= float(extra.get("free", -1)) <= 100
        except (TypeError, ValueError):
            free_ok = False
        if free_ok and extra.get("fstype") in FILE_SYSTEM_TYPE_IGNORE:
            return "ignored_fstype"
    if kind == DISK_READONLY and not readonly_entries(extra):
        return "ignored_readonly"
    if kind == PING:
        server = hosts.by_address(extra.get("host"), record.get("_cloudid_", 0))
        cloud = int(record.get("_cloudid_") or 0)
        if server is None or (cloud > 1 and server.bk_biz_id != host.bk_biz_id):
            return "ping_scope"
    return None


def readonly_entries(extra: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The ``ro`` entries ``DiskReadonlyFilter`` keeps (type not ignored)."""
    entries = extra.get("ro") or []
    return [
        e
        for e in entries
        if isinstance(e, Mapping) and e.get("type") not in FILE_SYSTEM_TYPE_IGNORE
    ]


def anomaly_message(record: Mapping[str, Any], filtered: Mapping[str, Any]) -> str:
    """bkmonitor's per-type anomaly text (in English) unless the record has a title."""
    if record.get("_title_"):
        return str(record["_title_"])
    kind, extra = record["_type_"], record["_extra_"]
    messages = {
        AGENT: "GSE agent heartbeat lost",
        DISK_READONLY: f"disk ({filtered.get('position', '')}) is read-only",
        DISK_FULL: f"disk ({extra.get('disk', '')}) has only {extra.get('free', '')}% free",
        COREFILE: f"corefile generated: {extra.get('corefile', '')}",
        PING: "ping unreachable",
        OOM: f"OOM event (process: {extra.get('process', '')}): {extra.get('message', '')}",
    }
    return messages.get(kind, "")


def record_dimensions(
    record: Mapping[str, Any], dims: Mapping[str, Any], filtered: Mapping[str, Any]
) -> dict[str, Any]:
    """The dimensions ``record_id`` is computed from: corefile and OOM add their keys (and a
    nested ``__additional_dimensions``) before the md5, the other types keep ``full()``'s."""
    kind = record["_type_"]
    if kind == COREFILE:
        extras = {k: filtered[k] for k in DIMENSION_FIELDS[COREFILE]}
        return {**dims, **extras, "__additional_dimensions": {"corefile": filtered["corefile"]}}
    if kind == OOM:
        extras = {k: v for k, v in filtered.items() if k not in ("process", "message")}
        return {**dims, **extras, "__additional_dimensions": {"process": filtered["process"]}}
    return dict(dims)


def clean(
    record: Mapping[str, Any],
    dims: Mapping[str, Any],
    strategy: Strategy,
    prefix: str,
    now: float,
) -> EventAnomaly:
    """bkmonitor's ``clean()`` of a record fanned out to ``strategy`` (its first item)."""
    item = strategy.items[0]
    level = item.level()
    event_time = parse_time(record["_time_"])
    filtered = filter_dimensions(record, dims)
    raw_dims = record_dimensions(record, dims, filtered)
    md5 = count_md5(raw_dims)
    kind = record["_type_"]
    fields = ["bk_target_ip", "bk_target_cloud_id"]
    if "agent_version" in dims:
        fields.append("agent_version")
    fields.extend(DIMENSION_FIELDS.get(kind, ()))
    value = record.get("_title_", "")
    anomaly_id = f"{md5}.{event_time}.{strategy.id}.{item.id}.{level}"
    element = {
        "data": {
            "time": event_time,
            "value": value,
            "values": {"time": event_time, "value": value},
            "dimensions": {**raw_dims, **filtered},
            "record_id": f"{md5}.{event_time}",
            "dimension_fields": fields,
        },
        "anomaly": {
            str(level): {
                "anomaly_id": anomaly_id,
                "anomaly_time": format_time(int(now)),
                "anomaly_message": anomaly_message(record, filtered),
            }
        },
        "strategy_snapshot_key": STRATEGY_SNAPSHOT_KEY.key(
            prefix, strategy_id=strategy.id, update_time=strategy.number("update_time")
        ),
    }
    digest = hashlib.md5(orjson.dumps(record, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return EventAnomaly(
        strategy,
        item.id,
        level,
        str(dims["bk_target_ip"]),
        md5,
        event_time,
        anomaly_id,
        digest,
        element,
    )


def access(
    record: Mapping[str, Any],
    hosts: HostIndex,
    strategies: EventStrategies,
    prefix: str,
    now: float,
) -> tuple[list[EventAnomaly], list[str]]:
    """One flat record: ``full()``, the filters in bkmonitor's order, ``clean()``.

    Returns the anomalies and one drop reason per record or strategy clone that was dropped.
    """
    host = find_host(record, hosts)
    if host is None:
        return [], ["unknown_host"]
    matching = strategies.matching(host.bk_biz_id, record["_type_"])
    if not matching:
        return [], ["no_strategy"]
    if record["_type_"] == DISK_READONLY:
        extra = {**record["_extra_"], "ro": readonly_entries(record["_extra_"])}
        record = {**record, "_extra_": extra} if extra["ro"] else record
    dims = host_dimensions(record, host)
    filtered = filter_dimensions(record, dims)
    anomalies, drops = [], []
    expired = parse_time(record["_time_"]) < now - EXPIRE_SECONDS
    for strategy in matching:
        item = strategy.items[0]
        if expired:
            drops.append("expired")
        elif host.ignore_monitoring:
            drops.append("host_disabled")
        elif not target_match(item.target, dims):
            drops.append("out_of_range")
        elif not strategies.conditions(strategy).matches(mapping_lookup(filtered)):
            drops.append("condition")
        elif (reason := record_filter(record, host, hosts)) is not None:
            drops.append(reason)
        else:
            anomalies.append(clean(record, dims, strategy, prefix, now))
    return anomalies, drops


def access_message(
    records: Iterable[Mapping[str, Any]],
    hosts: HostIndex,
    strategies: EventStrategies,
    prefix: str,
    now: float,
) -> tuple[list[EventAnomaly], list[str]]:
    """:func:`access` of every flat record of one message; the anomalies highest strategy
    priority first (bkmonitor's ``PriorityChecker.check_records`` order, per message)."""
    anomalies: list[EventAnomaly] = []
    drops: list[str] = []
    for record in records:
        found, dropped = access(record, hosts, strategies, prefix, now)
        anomalies.extend(found)
        drops.extend(dropped)
    anomalies.sort(key=lambda a: a.strategy.number("priority"), reverse=True)
    return anomalies, drops
