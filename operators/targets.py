"""bkmonitor's ``TargetCondition`` (``bkmonitor/utils/range/target.py``): whether a record's
dimensions fall inside an item's ``target``.

``target`` is a list of OR groups, each a list of AND conditions ``{field, method, value}``.
Each condition becomes a set of keys when the target is read, as bkmonitor's
``load_target_condition`` does:

- ``ip`` / ``bk_target_ip``: ``bk_host_id`` and ``"ip|cloud"`` of each value;
- ``service_instance_id`` / ``bk_target_service_instance_id``: the instance ids;
- ``*_topo_node`` (``host_topo_node``, ``service_topo_node``): ``"obj|inst"`` ids;
- ``dynamic_group``: the host ids of the named host dynamic groups (from the dynamic-group
  table, see :class:`DynamicGroups`), matched as ``bk_target_ip``; a group with no host still
  makes a condition, one that no record meets;
- any other field gives no keys, and a condition without keys is left out. A group left
  with no condition is left out, and a target whose groups were all left out matches nothing.

A record meets a condition when its keys meet the condition's (``eq``: they intersect, any
other method: they do not). A host or service-instance condition is skipped when the record
has no such id; a topo condition fails when the record has no topo nodes. A target that is
empty (or whose first group is empty) matches every record, as ``Item.target_condition_obj``
is then ``None``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from operators.hosts import HostError

IP_FIELDS = ("ip", "bk_target_ip")
SERVICE_FIELDS = ("service_instance_id", "bk_target_service_instance_id")
DYNAMIC_GROUP = "dynamic_group"
NO_HOST = 0
"""bkmonitor's key for a dynamic group without hosts: an int, which no record key equals."""


class DynamicGroupError(HostError):
    """The dynamic-group table (CMDB data beside the host table) is unusable; the message
    names the group."""


@dataclass(frozen=True)
class DynamicGroups:
    """CMDB dynamic groups as bkmonitor's ``DynamicGroupManager`` caches them: group id →
    ``{"bk_obj_id": "host" | "set", "bk_inst_ids": [...]}``. Only host groups take part in
    targets (bkmonitor: "目前仅支持host动态分组")."""

    groups: Mapping[str, Mapping[str, Any]]

    def host_keys(self, group_ids: Iterable[Any]) -> set[Any]:
        keys: set[Any] = set()
        for group_id in group_ids:
            group = self.groups.get(str(group_id))
            if group and group.get("bk_obj_id") == "host":
                keys.update(str(inst) for inst in group.get("bk_inst_ids") or ())
        return keys


NO_GROUPS = DynamicGroups({})


def parse_dynamic_groups(obj: Any) -> DynamicGroups:
    """A JSON object of group id → ``{bk_obj_id, bk_inst_ids}`` (bkmonitor's cache hash)."""
    if not isinstance(obj, Mapping):
        raise DynamicGroupError("dynamic groups must be an object of group id -> group")
    for group_id, group in obj.items():
        if not isinstance(group, Mapping) or not isinstance(group.get("bk_inst_ids", []), list):
            raise DynamicGroupError(
                f"dynamic group {group_id!r}: expected {{bk_obj_id, bk_inst_ids: [...]}}"
            )
    return DynamicGroups({str(k): v for k, v in obj.items()})


def load_dynamic_groups(path: str | Path) -> DynamicGroups:
    """The dynamic-group table of a JSON file; an empty path means no groups."""
    if not str(path):
        return NO_GROUPS
    try:
        return parse_dynamic_groups(orjson.loads(Path(path).read_bytes()))
    except (OSError, orjson.JSONDecodeError) as exc:
        raise DynamicGroupError(f"cannot read dynamic groups: {exc}") from None


@dataclass(frozen=True)
class Condition:
    field: str
    method: str
    keys: frozenset[Any]


def _is_topo(field: str) -> bool:
    _, sep, rest = field.partition("_")
    return bool(sep) and rest == "topo_node"


def _condition_keys(
    field: str, values: Sequence[Any], groups: DynamicGroups
) -> tuple[str, set[Any]]:
    keys: set[Any] = set()
    mappings = [v for v in values if isinstance(v, Mapping)]
    if field in IP_FIELDS:
        for value in mappings:
            if value.get("bk_host_id"):
                keys.add(str(value["bk_host_id"]))
            ip = value.get("bk_target_ip", value.get("ip"))
            if ip:
                cloud = value.get("bk_target_cloud_id", value.get("bk_cloud_id", 0))
                keys.add(f"{ip}|{cloud}")
    elif field in SERVICE_FIELDS:
        for value in mappings:
            instance = value.get("bk_target_service_instance_id", value.get("service_instance_id"))
            if instance:
                keys.add(str(instance))
    elif _is_topo(field):
        for value in mappings:
            if value.get("bk_obj_id") and value.get("bk_inst_id"):
                keys.add(f"{value['bk_obj_id']}|{value['bk_inst_id']}")
    elif field == DYNAMIC_GROUP:
        ids = {v["dynamic_group_id"] for v in mappings if v.get("dynamic_group_id")}
        keys = groups.host_keys(ids) or {NO_HOST}
        field = "bk_target_ip"
    return field, keys


def compile_target(
    target: Sequence[Sequence[Mapping[str, Any]]] | None, groups: DynamicGroups = NO_GROUPS
) -> tuple[tuple[Condition, ...], ...] | None:
    """``load_target_condition``; ``None`` for a target that matches every record."""
    if not target or not target[0]:
        return None
    compiled = []
    for group in target:
        conditions = []
        for cond in group:
            if not isinstance(cond, Mapping):
                continue
            values = cond.get("value")
            values = values if isinstance(values, list) else []
            field, keys = _condition_keys(str(cond.get("field", "")).lower(), values, groups)
            if keys:
                method = str(cond.get("method", "eq")).lower()
                conditions.append(Condition(field, method, frozenset(keys)))
        if conditions:
            compiled.append(tuple(conditions))
    return tuple(compiled)


def _record_keys(field: str, data: Mapping[str, Any]) -> set[str] | None:
    """The record's keys for ``field``; None to skip the condition, an empty set to fail."""
    if field in IP_FIELDS:
        keys = set()
        if data.get("bk_host_id"):
            keys.add(str(data["bk_host_id"]))
        ip = data.get("bk_target_ip", data.get("ip"))
        if ip:
            keys.add(f"{ip}|{data.get('bk_target_cloud_id', data.get('bk_cloud_id', 0))}")
        return keys or None
    if field in SERVICE_FIELDS:
        instance = data.get("bk_target_service_instance_id", data.get("service_instance_id"))
        return {str(instance)} if instance else None
    if _is_topo(field):
        if "bk_topo_node" in data:
            nodes = data["bk_topo_node"]
        elif "bk_obj_id" in data and "bk_inst_id" in data:
            nodes = [f"{data['bk_obj_id']}|{data['bk_inst_id']}"]
        else:
            nodes = []
        return {str(n) for n in nodes} if isinstance(nodes, list) else set()
    return set()


def compiled_match(
    compiled: tuple[tuple[Condition, ...], ...] | None, data: Mapping[str, Any]
) -> bool:
    """``TargetCondition.is_match`` of a compiled target."""
    if compiled is None:
        return True
    for conditions in compiled:
        for cond in conditions:
            have = _record_keys(cond.field, data)
            if have is None:
                continue
            if _is_topo(cond.field) and not have:
                break
            if bool(cond.keys & have) != (cond.method == "eq"):
                break
        else:
            return True
    return False


def target_match(
    target: Sequence[Sequence[Mapping[str, Any]]],
    dims: Mapping[str, Any],
    groups: DynamicGroups = NO_GROUPS,
) -> bool:
    """``TargetCondition(target).is_match(dims)``."""
    return compiled_match(compile_target(target, groups), dims)
