"""bkmonitor's ``TargetCondition`` (``utils/range/target.py``): whether a record's dimensions
fall inside an item's ``target``.

``target`` is a list of OR groups, each a list of AND conditions ``{field, method, value}``.
Host fields compare key sets: the record's ``bk_host_id`` and ``"ip|cloud"`` against the
target's; topo-node fields compare ``"obj|inst"`` ids. ``eq`` means the two sets intersect,
any other method that they do not. An IP condition is skipped when the record has no IP or
host id; any other condition fails when the record lacks the field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

IP_FIELDS = ("ip", "bk_target_ip")


def _target_keys(field: str, dimensions: Mapping[str, Any]) -> set[str] | None:
    if field in IP_FIELDS:
        ip = dimensions.get("bk_target_ip") or dimensions.get("ip")
        if not ip and not dimensions.get("bk_host_id"):
            return None
        keys = {
            f"{ip}|{dimensions.get('bk_target_cloud_id') or dimensions.get('bk_cloud_id') or 0}"
        }
        if dimensions.get("bk_host_id"):
            keys.add(str(dimensions["bk_host_id"]))
        return keys
    if field.endswith("topo_node"):
        nodes = dimensions.get("bk_topo_node") or ()
        if not nodes and "bk_obj_id" in dimensions:
            nodes = [f"{dimensions['bk_obj_id']}|{dimensions.get('bk_inst_id')}"]
        return set(nodes)
    value = dimensions.get(field)
    return None if value is None else {str(value)}


def _wanted_keys(field: str, values: Sequence[Any]) -> set[str]:
    keys = set()
    for value in values:
        if not isinstance(value, Mapping):
            keys.add(str(value))
        elif field.endswith("topo_node"):
            keys.add(f"{value.get('bk_obj_id')}|{value.get('bk_inst_id')}")
        elif "bk_host_id" in value:
            keys.add(str(value["bk_host_id"]))
        else:
            ip = value.get("bk_target_ip") or value.get("ip")
            keys.add(f"{ip}|{value.get('bk_target_cloud_id') or value.get('bk_cloud_id') or 0}")
    return keys


def target_match(target: Sequence[Sequence[Mapping[str, Any]]], dims: Mapping[str, Any]) -> bool:
    """``TargetCondition``: OR of AND groups; ``eq`` means the key sets intersect."""
    if not target or not any(target):
        return True
    for group in target:
        ok = True
        for cond in group:
            field = str(cond.get("field", ""))
            have = _target_keys(field, dims)
            if have is None:
                if field in IP_FIELDS:
                    continue
                ok = False
                break
            hit = bool(have & _wanted_keys(field, cond.get("value") or ()))
            if hit != (cond.get("method", "eq") == "eq"):
                ok = False
                break
        if ok:
            return True
    return False
