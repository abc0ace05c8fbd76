"""The action a converge step sees, and its converge context (bkmonitor.md §5.1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from operators.md5 import count_md5
from operators.rejects import Reason, Rejected

END_STATUS = frozenset(
    {"success", "partial_success", "failure", "partial_failure", "skipped", "shield", "blocked"}
)
PROCEED_STATUS = frozenset({"received", "waiting", "converging", "sleep", "converged", "running"})
DEFAULT_TIMEOUT_S = 600


@dataclass(frozen=True)
class Action:
    """One action instance (bkmonitor's ``ActionInstance``) with its alerts' ids."""

    id: int
    create_time: float
    status: str
    signal: str
    strategy_id: int
    bk_biz_id: int
    alert_level: int
    alert_name: str
    action_config_id: int
    plugin_type: str
    notice_way: str
    notice_receiver: tuple[str, ...]
    user_type: str
    dimensions: str
    is_parent: bool
    timeout: int
    alert_ids: tuple[str, ...]
    converge_config: dict[str, Any] | None
    shield: str = ""
    """Why the action is shielded (bkmonitor's alert shield: an alert with ``is_shielded``),
    else empty."""


def _field(data: dict, name: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
    value = data.get(name, default)
    if value is None and default is None:
        raise Rejected(Reason.MISSING_FIELD, f"action has no {name!r}")
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise Rejected(Reason.WRONG_TYPE, f"action field {name!r} is {type(value).__name__}")
    return value


def _dimensions(data: dict, alerts: list) -> str:
    """The action's ``dimension_hash``, else ``count_md5`` of the alerts' common dimensions."""
    given = data.get("dimension_hash")
    if isinstance(given, str) and given:
        return given
    common: set[str] | None = None
    for alert in alerts:
        pairs = {
            f"{d.get('key')}={d.get('value')}"
            for d in alert.get("dimensions") or []
            if isinstance(d, dict) and d.get("value") not in (None, "")
        }
        common = pairs if common is None else common & pairs
    return count_md5(sorted(common or ()))


def _shield(alerts: list[dict]) -> str:
    """The reason the first shielded alert gives, as bkmonitor's alert-shield check does."""
    for alert in alerts:
        if alert.get("is_shielded") is True:
            shield_id = alert.get("shield_id")
            by = f" by shield {shield_id}" if shield_id not in (None, "", []) else ""
            return f"alert {alert['id']} is shielded{by}"
    return ""


def parse_action(data: dict) -> Action:
    """An :class:`Action` from its JSON object, or :class:`Rejected`."""
    alerts = _field(data, "alerts", list, [])
    if not all(isinstance(a, dict) and isinstance(a.get("id"), str) for a in alerts):
        raise Rejected(Reason.WRONG_TYPE, "every alert needs a string 'id'")
    config = data.get("converge_config")
    if config is not None and not isinstance(config, dict):
        raise Rejected(Reason.WRONG_TYPE, "converge_config must be an object")
    receiver = _field(data, "notice_receiver", (list, str), [])
    return Action(
        id=_field(data, "id", int),
        create_time=float(_field(data, "create_time", (int, float))),
        status=_field(data, "status", str, "received"),
        signal=_field(data, "signal", str, "abnormal"),
        strategy_id=_field(data, "strategy_id", int, 0),
        bk_biz_id=_field(data, "bk_biz_id", int, 0),
        alert_level=_field(data, "alert_level", int, 3),
        alert_name=_field(data, "alert_name", str, ""),
        action_config_id=_field(data, "action_config_id", int, 0),
        plugin_type=_field(data, "plugin_type", str, "notice"),
        notice_way=_field(data, "notice_way", str, ""),
        notice_receiver=(receiver,) if isinstance(receiver, str) else tuple(map(str, receiver)),
        user_type=_field(data, "user_type", str, ""),
        dimensions=_dimensions(data, alerts),
        is_parent=_field(data, "is_parent_action", bool, False),
        timeout=_field(data, "timeout", int, DEFAULT_TIMEOUT_S),
        alert_ids=tuple(a["id"] for a in alerts),
        converge_config=config,
        shield=_shield(alerts),
    )


def converge_context(action: Action) -> dict[str, Any]:
    """bkmonitor's converge context (``core/context/converge.py``)."""
    alert_info = (
        f"{action.strategy_id or action.alert_name}_{action.alert_level}_"
        f"{action.signal}_{action.dimensions}"
    )
    receiver = ",".join(action.notice_receiver)
    group_way = f"{action.user_type}_{action.notice_way}" if action.user_type else action.notice_way
    return {
        "dimensions": action.dimensions,
        "strategy_id": action.strategy_id,
        "alert_name": action.alert_name,
        "bk_biz_id": action.bk_biz_id,
        "alert_level": action.alert_level,
        "signal": action.signal,
        "alert_info": alert_info,
        "notice_way": action.notice_way,
        "notice_receiver": receiver,
        "group_notice_way": group_way,
        "notice_info": f"{alert_info}_{action.notice_way}_{receiver}",
        "action_info": f"{action.strategy_id}_{action.signal}_{action.action_config_id}",
    }
