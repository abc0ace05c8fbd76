"""bkmonitor's ``DataRecord`` (``service/access/data/records.py``), as pure functions.

A raw point is a flat mapping: dimension columns, metric columns, ``_result_`` and ``_time_``
(a TSDB row) or ``time`` (a real-time Kafka message, flattened). :class:`RecordSpec` holds what
of an item a record needs; :func:`clean_record` gives the standard data record that detect reads
(``access/data/processor.py``), enriched from the CMDB host table like ``TopoNodeFuller``
(``access/data/fullers.py``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from operators.bounds import within_64_bits
from operators.hosts import HostIndex
from operators.md5 import count_md5
from operators.rejects import Reason, Rejected
from operators.strategy import Item

POINT_PRECISION = 6
REAL_TIME = "REAL_TIME"
PROC_PORT_METRIC = "bk_monitor.proc_port"
PROC_PORT_DYNAMIC_DIMENSIONS = ("listen", "nonlisten", "not_accurate_listen", "protocol", "bind_ip")
RESULT_FIELD = "_result_"


@dataclass(frozen=True)
class RecordSpec:
    """What a data record takes from its item's query.

    ``group_by`` is None when the query has no group-by (every raw key but the reserved ones
    is then a dimension); ``metrics`` are ``(field, alias)`` pairs, ``_result_`` included;
    ``real_time_field`` is the metric read as the value of a ``REAL_TIME`` item.
    """

    group_by: tuple[str, ...] | None
    metrics: tuple[tuple[str, str], ...]
    real_time_field: str = ""
    proc_port: bool = False
    time_field: str = "time"


def record_spec(item: Item, group_by: Sequence[str] | None = None) -> RecordSpec:
    """The spec of ``item``; ``group_by`` overrides the query's (real-time access forces the
    result table's dimensions, as bkmonitor does)."""
    configs = item.query_configs
    if group_by is None and any("agg_dimension" in c for c in configs):
        group_by = [d for c in configs for d in (c.get("agg_dimension") or ())]
    metrics: list[tuple[str, str]] = []
    if len(configs) == 1:
        field = str(configs[0].get("metric_field") or "")
        if field:
            metrics.append((field, str(configs[0].get("alias") or field)))
    metrics.append((RESULT_FIELD, RESULT_FIELD))
    first = configs[0] if configs else {}
    real_time = first.get("agg_method") == REAL_TIME
    return RecordSpec(
        group_by=None if group_by is None else tuple(dict.fromkeys(group_by)),
        metrics=tuple(metrics),
        real_time_field=str(first.get("metric_field") or "") if real_time else "",
        proc_port=any(c.get("metric_id") == PROC_PORT_METRIC for c in configs),
        time_field=str(first.get("time_field") or "time"),
    )


def _empty_dynamic(value: Any) -> bool:
    return isinstance(value, str) and (not value or not value[1:-1])


def raw_dimensions(raw: Mapping[str, Any], spec: RecordSpec) -> dict[str, Any]:
    """The dimensions ``record_id`` is computed from (bkmonitor's ``calculate_record_id``)."""
    if spec.group_by is None:
        return {
            k: v
            for k, v in raw.items()
            if k not in ("_time_", RESULT_FIELD) and not k.startswith("bk_task_index_")
        }
    dims = {}
    for field in spec.group_by:
        value = raw.get(field)
        if field in PROC_PORT_DYNAMIC_DIMENSIONS and (spec.proc_port or _empty_dynamic(value)):
            continue
        dims[field] = value
    return dims


def time_field(raw: Mapping[str, Any]) -> tuple[str, Any]:
    """The field a point's data time is read from and its value (the one the time window must
    check): ``_time_`` unless empty, else ``time``, as ``DataRecord.time`` reads
    ``raw_data.get("_time_") or raw_data["time"]`` (bkmonitor's ``access/data/records.py``)."""
    stamped = raw.get("_time_")
    if stamped:
        return "_time_", stamped
    value = raw.get("time")
    if value is None:
        raise Rejected(Reason.MISSING_FIELD, "a data point needs '_time_' or 'time'")
    return "time", value


def record_time(raw: Mapping[str, Any]) -> int:
    """``_time_``, else ``time``: epoch seconds as an int."""
    name, value = time_field(raw)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Rejected(Reason.WRONG_TYPE, f"'{name}' must be epoch seconds, got {value!r}")
    return int(value)


def record_id(raw: Mapping[str, Any], spec: RecordSpec) -> str:
    """``"{count_md5(dimensions)}.{time}"``."""
    return f"{count_md5(raw_dimensions(raw, spec))}.{record_time(raw)}"


def number_format(value: Any) -> Any:
    """bkmonitor's ``number_format``: falsy values become 0, numeric strings numbers."""
    if not value:
        return 0
    if isinstance(value, str):
        try:
            return float(value) if "." in value else int(value)
        except ValueError:
            return value
    return value


def convert(value: Any, field: str = "value") -> Any:
    """``DataRecord._convert``: ``number_format`` then round to :data:`POINT_PRECISION`
    decimals. A value bkmonitor's ``round`` would raise on (a list, an object), or that JSON
    cannot carry (NaN, an infinity), is :class:`Rejected`."""
    kind = type(value)
    if kind is float or kind is int:  # the common case, the same steps without the tests
        if not value:
            return 0
        if not math.isfinite(value):
            raise Rejected(Reason.OUT_OF_RANGE, f"'{field}' is not a finite number")
        return round(value, POINT_PRECISION)
    value = number_format(value)
    if isinstance(value, str) or not value:
        return value
    if not isinstance(value, int | float):
        raise Rejected(Reason.WRONG_TYPE, f"'{field}' must be a number or a string")
    if isinstance(value, int) and not within_64_bits(value):
        raise Rejected(Reason.OUT_OF_RANGE, f"'{field}' is wider than 64 bits")
    if not math.isfinite(value):
        raise Rejected(Reason.OUT_OF_RANGE, f"'{field}' is not a finite number")
    return round(value, POINT_PRECISION)


def record_value(raw: Mapping[str, Any], spec: RecordSpec) -> Any:
    """``DataRecord.value``: the raw metric field for ``REAL_TIME`` items, else ``_result_``,
    converted; None stays None."""
    field = spec.real_time_field or RESULT_FIELD
    value = raw.get(field)
    return None if value is None else convert(value, field)


def record_values(
    raw: Mapping[str, Any], spec: RecordSpec, time: int | None = None
) -> dict[str, Any]:
    """``DataRecord.values``: each metric (its alias when the raw row has it), converted, and
    the time (``time`` when the caller has read it already)."""
    values = {}
    for field, alias in spec.metrics:
        name = alias if raw.get(alias) is not None else field
        values[name] = convert(raw.get(name), name)
    values[spec.time_field] = record_time(raw) if time is None else time
    return values


def fill_topo(dimensions: dict[str, Any], hosts: HostIndex) -> dict[str, Any]:
    """``TopoNodeFuller``: the host by id, else agent id, else ip + cloud; adds the target
    ip, cloud id (str), topo nodes and host id. Service instances are not modelled."""
    host = hosts.by_id(dimensions.get("bk_host_id")) or hosts.by_agent(
        dimensions.get("bk_agent_id")
    )
    if host is not None:
        dimensions["bk_target_ip"] = host.ip
        dimensions["bk_target_cloud_id"] = str(host.cloud_id)
        dimensions["bk_topo_node"] = list(host.topo_nodes)
        dimensions.setdefault("bk_host_id", str(host.bk_host_id))
        return dimensions
    ip = dimensions.get("bk_target_ip") or dimensions.get("ip")
    cloud = dimensions.get("bk_target_cloud_id") or dimensions.get("bk_cloud_id") or "0"
    host = hosts.by_address(ip, cloud) if ip else None
    if host is not None:
        dimensions["bk_target_cloud_id"] = str(host.cloud_id)
        dimensions["bk_topo_node"] = list(host.topo_nodes)
        dimensions.setdefault("bk_host_id", host.bk_host_id)
    return dimensions


@dataclass(frozen=True, slots=True)
class Dimensions:
    """What a standard data record takes from its dimensions alone: the same for every point
    of one series (one group-by's values), so that access can make it once per series."""

    md5: str
    """``count_md5`` of the raw dimensions: the record id's first part."""
    fields: list[str]
    """``dimension_fields``: the raw dimension keys."""
    enriched: dict[str, Any]
    """The dimensions as ``TopoNodeFuller`` fills them (shared by the series' records: never
    changed once made)."""


def record_dimensions(
    raw: Mapping[str, Any], spec: RecordSpec, hosts: HostIndex | None
) -> Dimensions:
    dims = raw_dimensions(raw, spec)
    fields = [f for f in dims if not (spec.proc_port and f in PROC_PORT_DYNAMIC_DIMENSIONS)]
    enriched = fill_topo(dict(dims), hosts) if hosts is not None else dict(dims)
    return Dimensions(count_md5(dims), fields, enriched)


def series_key(raw: Mapping[str, Any], spec: RecordSpec) -> tuple | None:
    """What :func:`record_dimensions` depends on besides the spec and the hosts: the values
    of the group-by fields, each with its type (``1``, ``1.0``, ``True`` and ``"1"`` are
    different dimensions); None when the spec has no group-by (every key is then a
    dimension, the time and the metrics too)."""
    if spec.group_by is None:
        return None
    values = tuple(map(raw.get, spec.group_by))
    for value in values:
        if type(value) is not str:
            return tuple(v if type(v) is str else (type(v), str(v)) for v in values)
    return values


def clean_record(
    raw: Mapping[str, Any],
    spec: RecordSpec,
    hosts: HostIndex | None,
    access_time: float,
    dimensions: Dimensions | None = None,
) -> dict[str, Any]:
    """The standard data record: time, value, values, dimensions (enriched), record_id,
    dimension_fields (the raw dimension keys) and access_time; ``dimensions`` when the
    series' are known already."""
    dims = dimensions or record_dimensions(raw, spec, hosts)
    time = record_time(raw)
    return {
        "time": time,
        "value": record_value(raw, spec),
        "values": record_values(raw, spec, time),
        "dimensions": dims.enriched,
        "record_id": f"{dims.md5}.{time}",
        "dimension_fields": dims.fields,
        "access_time": access_time,
    }


@dataclass(slots=True)
class Point:
    """One metric message: its result table, its business, the flattened raw row and the
    names of its dimensions. Never changed once made; not frozen, as a frozen dataclass
    takes several times as long to build, once per message."""

    result_table_id: str
    bk_biz_id: int
    raw: dict[str, Any]
    dimension_names: tuple[str, ...] = ()

    @property
    def dimensions(self) -> dict[str, Any]:
        return {name: self.raw[name] for name in self.dimension_names}


def parse_point(obj: Mapping[str, Any]) -> Point:
    """A metric message ``{result_table_id, time, dimensions, metrics}``, flattened to
    ``{"time": t, **metrics, **dimensions}`` as bkmonitor's real-time handler does. A missing
    or non-numeric ``dimensions.bk_biz_id`` gives business 0 (dropped by the flows)."""
    rt = obj.get("result_table_id")
    if not isinstance(rt, str) or not rt:
        raise Rejected(Reason.MISSING_FIELD, "'result_table_id' must be a non-empty string")
    dims, metrics = obj.get("dimensions"), obj.get("metrics")
    if not (type(dims) is dict or isinstance(dims, Mapping)) or not (
        type(metrics) is dict or isinstance(metrics, Mapping)
    ):
        raise Rejected(Reason.WRONG_TYPE, "'dimensions' and 'metrics' must be objects")
    raw = {"time": obj.get("time"), **metrics, **dims}
    record_time(raw)
    biz = dims.get("bk_biz_id")
    try:
        bk_biz_id = 0 if isinstance(biz, bool) else int(biz or 0)
    except (TypeError, ValueError):
        bk_biz_id = 0
    return Point(rt, bk_biz_id, raw, tuple(dims))
