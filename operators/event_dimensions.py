"""What each of bkmonitor's event record classes adds to a record: its filter dimensions, the
dimensions its record id is computed from, the dimensions and dimension fields it writes, its
record-level filter and its anomaly text.

``filter_dimensions`` is what ``ConditionFilter`` matches a strategy's conditions against.
``clean()`` computes ``data.dimensions`` before ``record_id``, and corefile and OOM records
add to the record's own dimensions in their ``clean_dimensions``, so those additions enter
the record id (:func:`record_dimensions`); the other classes write the dimensions plus their
filter dimensions but hash the dimensions alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from operators.drops import Drop
from operators.event_records import (
    AGENT,
    COREFILE,
    DISK_FULL,
    DISK_READONLY,
    OOM,
    PING,
    PROCESS,
    is_object,
)
from operators.event_texts import text
from operators.hosts import Host, HostIndex

FILE_SYSTEM_TYPE_IGNORE = ("iso9660", "tmpfs", "udf")
"""bkmonitor's ``settings.FILE_SYSTEM_TYPE_IGNORE``."""
DISK_FILTER_FILE_SYSTEM_REGEXES = (r"/?dev/loop.*", r"/?dev/sr.*", r".*?\.iso$")
"""The ``file_system_regex`` of bkmonitor's ``settings.DISK_FILTER_CONDITION_LIST_V1``: loop
devices, optical drives and ISO images never fill up."""
_DISK_FILTERS = tuple(re.compile(regex) for regex in DISK_FILTER_FILE_SYSTEM_REGEXES)
READONLY_DIMENSIONS = ("position", "type", "fs")
OOM_EXTERNAL = ("oom_memcg", "task_memcg", "task", "constraint")
COREFILE_DIMENSIONS = ("executable_path", "executable", "signal")
TYPE_DIMENSION_FIELDS = {
    COREFILE: COREFILE_DIMENSIONS,
    DISK_FULL: ("file_system", "fstype", "disk"),
    DISK_READONLY: READONLY_DIMENSIONS,
    PROCESS: ("process_group_id", "process_name"),
}


def _extra(record: Mapping[str, Any]) -> Mapping[str, Any]:
    """The record's ``_extra_`` object, else an empty one (asked five times per record)."""
    extra = record.get("_extra_")
    return extra if is_object(extra) else {}


def filter_dimensions(record: Mapping[str, Any], dims: Mapping[str, Any]) -> dict[str, Any]:
    """The record class's ``filter_dimensions``."""
    kind, extra = record["_type_"], _extra(record)
    if kind == AGENT:
        return {"agent_version": dims.get("agent_version", "")}
    if kind == COREFILE:
        return {k: extra.get(k, "") for k in ("corefile", *COREFILE_DIMENSIONS)}
    if kind == DISK_FULL:
        return {k: extra.get(k, "") for k in ("disk", "file_system", "fstype")}
    if kind == DISK_READONLY:
        entries = [e for e in extra.get("ro") or () if is_object(e)]
        return {k: "".join(str(e[k]) for e in entries if e.get(k)) for k in READONLY_DIMENSIONS}
    if kind == OOM:
        found = {k: extra[k] for k in OOM_EXTERNAL if k in extra}
        return {"process": extra.get("process", ""), "message": extra.get("message", ""), **found}
    if kind == PROCESS:
        keys = ("event_name", "process_index", "process_group_id", "process_name")
        return {**{k: dims.get(k, "") for k in keys}, "agent_version": dims["agent_version"]}
    return {}


def record_dimensions(
    record: Mapping[str, Any], dims: Mapping[str, Any], filtered: Mapping[str, Any]
) -> dict[str, Any]:
    """The dimensions the record id is the md5 of: corefile adds its non-empty executable
    path, executable and signal, OOM every non-empty filter dimension but ``process``; each
    keeps its corefile / process under ``__additional_dimensions``."""
    kind, extra = record["_type_"], _extra(record)
    if kind == COREFILE:
        added = {k: extra[k] for k in COREFILE_DIMENSIONS if extra.get(k)}
        additional = {"corefile": extra["corefile"]} if extra.get("corefile") else None
    elif kind == OOM:
        added = {k: v for k, v in filtered.items() if k != "process" and v}
        additional = {"process": extra["process"]} if extra.get("process") else None
    else:
        return dict(dims)
    out = {**dims, **added}
    if additional is not None:
        out["__additional_dimensions"] = additional
    return out


def clean_dimensions(
    record: Mapping[str, Any], dims: Mapping[str, Any], filtered: Mapping[str, Any]
) -> dict[str, Any]:
    """``clean_dimensions``: corefile and OOM write their record dimensions; the others the
    dimensions plus the filter dimensions, disk-readonly then taking position, type and fs
    from its first ``ro`` entry."""
    kind = record["_type_"]
    if kind in (COREFILE, OOM):
        return record_dimensions(record, dims, filtered)
    out = {**dims, **filtered}
    if kind == DISK_READONLY:
        entries = _extra(record).get("ro") or ()
        first = entries[0] if entries and is_object(entries[0]) else {}
        out.update({k: first.get(k, "") for k in READONLY_DIMENSIONS})
    return out


def dimension_fields(kind: int, dims: Mapping[str, Any]) -> list[str]:
    """``clean_dimension_fields``."""
    fields = ["bk_target_ip", "bk_target_cloud_id"]
    if "agent_version" in dims:
        fields.append("agent_version")
    return fields + list(TYPE_DIMENSION_FIELDS.get(kind, ()))


def readonly_entries(extra: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The ``ro`` entries ``DiskReadonlyFilter`` keeps (type, lower-cased, not ignored)."""
    entries = extra.get("ro") or []
    return [
        e
        for e in entries
        if is_object(e) and str(e.get("type") or "").lower() not in FILE_SYSTEM_TYPE_IGNORE
    ]


def disk_full_ignored(extra: Mapping[str, Any]) -> bool:
    """``DiskFullFilter``: with ``free`` within 0..100, an ignored ``fstype``, or else a
    ``file_system`` that one of the regexes matches (``re.match``: from its start)."""
    free = extra.get("free")
    if isinstance(free, bool) or not isinstance(free, int | float) or not 0 <= free <= 100:
        return False
    if "fstype" in extra and extra["fstype"] in FILE_SYSTEM_TYPE_IGNORE:
        return True
    file_system = extra.get("file_system")
    return isinstance(file_system, str) and any(r.match(file_system) for r in _DISK_FILTERS)


def record_filter(record: Mapping[str, Any], host: Host, hosts: HostIndex) -> Drop | None:
    """The record class's own filter: the drop reason, or None to keep."""
    kind, extra = record["_type_"], _extra(record)
    if kind == DISK_FULL and disk_full_ignored(extra):
        return Drop.IGNORED_FSTYPE
    if kind == DISK_READONLY and not readonly_entries(extra):
        return Drop.IGNORED_READONLY
    if kind == PING:
        server = hosts.by_address(record.get("_server_"), record.get("_cloudid_") or 0)
        cloud = record.get("_cloudid_") or 0
        if server is None or (int(cloud) > 1 and server.bk_biz_id != host.bk_biz_id):
            return Drop.PING_SCOPE
    return None


def _corefile_message(extra: Mapping[str, Any], language: str) -> str:
    corefile, executable, signal = (extra.get(k) for k in ("corefile", "executable", "signal"))
    if executable and signal:
        return text(language, "corefile_executable_signal", executable, signal, corefile)
    if executable:
        return text(language, "corefile_executable", executable, corefile)
    if signal:
        return text(language, "corefile_signal", signal, corefile)
    return text(language, "corefile", corefile)


def anomaly_message(record: Mapping[str, Any], language: str) -> Any:
    """``clean_anomaly_message``: the record's title when it has one, else its class's text."""
    title = record.get("_title_")
    kind, extra = record["_type_"], _extra(record)
    if title or kind not in (AGENT, PING, DISK_FULL, DISK_READONLY, COREFILE, OOM):
        return title
    if kind == AGENT:
        return text(language, "agent")
    if kind == PING:
        return text(language, "ping")
    if kind == DISK_FULL:
        return text(language, "disk_full", extra.get("disk"), extra.get("free"))
    if kind == DISK_READONLY:
        described = ", ".join(
            f"{ro.get('fs')}-{ro.get('type')}({ro.get('position') or ro.get('positoin')})"
            for ro in extra.get("ro") or ()
            if is_object(ro)
        )
        return text(language, "disk_readonly", described)
    if kind == COREFILE:
        return _corefile_message(extra, language)
    return text(language, "oom", extra.get("process"), extra.get("total"), extra.get("message"))
