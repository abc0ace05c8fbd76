"""The action a converge step sees, and its converge context (``core/context/converge.py``).

:func:`parse_action` is total: any JSON object gives an :class:`Action` or :class:`Rejected`
with the field that is wrong, never another exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from operators.bounds import EPOCH_2000, TimeWindow
from operators.md5 import count_md5
from operators.rejects import Reason, Rejected

END_STATUS = frozenset(
    {"success", "partial_success", "failure", "partial_failure", "skipped", "shield", "blocked"}
)
PROCEED_STATUS = frozenset({"received", "waiting", "converging", "sleep", "converged", "running"})
DEFAULT_TIMEOUT_S = 600
MAX_TIMEOUT_S = 7 * 86400
"""Longest accepted ``timeout``: a sleeper retries every 30 s until it times out."""
DEFAULT_TIME_RANGE = "00:00:00--23:59:59"
ANY_TIME = TimeWindow(past_s=1e10, future_s=1e10)
"""Without a window around now: epoch seconds from 2000 to about 2340, so that no timer
derived from an action's time can overflow."""


@dataclass(frozen=True)
class Alert:
    """What converge reads of one alert snapshot: its id, dimensions (for shield configs),
    strategy id and level, the alert module's shield verdict, and its strategy snapshot."""

    id: str
    dimensions: tuple[tuple[str, Any], ...] = ()
    strategy_id: int = 0
    level: int = 0
    is_shielded: bool = False
    shield_id: str = ""
    strategy: dict[str, Any] | None = None


@dataclass(frozen=True)
class Action:
    """One action instance (bkmonitor's ``ActionInstance``) with its alerts."""

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
    alerts: tuple[Alert, ...]
    converge_config: dict[str, Any] | None
    time_range: str = DEFAULT_TIME_RANGE
    """bkmonitor's ``inputs.time_range``: when the action may run, ``HH:MM:SS--HH:MM:SS``."""

    @property
    def alert_ids(self) -> tuple[str, ...]:
        return tuple(alert.id for alert in self.alerts)


def _field(data: dict, name: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
    value = data.get(name, default)
    if value is None and default is None:
        raise Rejected(Reason.MISSING_FIELD, f"action has no {name!r}")
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise Rejected(Reason.WRONG_TYPE, f"action field {name!r} is {type(value).__name__}")
    return value


def _create_time(data: dict, window: TimeWindow, now: float) -> float:
    return window.check(_field(data, "create_time", (int, float)), now, "create_time")


def _timeout(data: dict) -> int:
    value = _field(data, "timeout", int, DEFAULT_TIMEOUT_S)
    if not 0 <= value <= MAX_TIMEOUT_S:
        raise Rejected(
            Reason.OUT_OF_RANGE, f"action field 'timeout' is not in [0, {MAX_TIMEOUT_S}]"
        )
    return value


def _pairs(raw: Any, where: str) -> tuple[tuple[str, Any], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise Rejected(Reason.WRONG_TYPE, f"{where} 'dimensions' is {type(raw).__name__}")
    return tuple(
        (str(d.get("key")), d.get("value"))
        for d in raw
        if isinstance(d, dict) and d.get("value") not in (None, "")
    )


def _alert(raw: Any, index: int) -> Alert:
    where = f"alerts[{index}]"
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
        raise Rejected(Reason.WRONG_TYPE, f"{where} needs a string 'id'")
    strategy = raw.get("strategy")
    if strategy is not None and not isinstance(strategy, dict):
        raise Rejected(Reason.WRONG_TYPE, f"{where} 'strategy' is {type(strategy).__name__}")
    shield_id = raw.get("shield_id")
    return Alert(
        id=raw["id"],
        dimensions=_pairs(raw.get("dimensions"), where),
        strategy_id=_field(raw, "strategy_id", int, 0),
        level=_field(raw, "severity", int, 0),
        is_shielded=raw.get("is_shielded") is True,
        shield_id="" if shield_id in (None, "", []) else str(shield_id),
        strategy=strategy,
    )


def _dimensions(data: dict, alerts: tuple[Alert, ...]) -> str:
    """The action's ``dimension_hash``, else ``count_md5`` of the alerts' common dimensions."""
    given = data.get("dimension_hash")
    if isinstance(given, str) and given:
        return given
    common: set[str] | None = None
    for alert in alerts:
        pairs = {f"{key}={value}" for key, value in alert.dimensions}
        common = pairs if common is None else common & pairs
    return count_md5(sorted(common or ()))


def parse_action(data: dict, window: TimeWindow = ANY_TIME, now: float = EPOCH_2000) -> Action:
    """An :class:`Action` from its JSON object, its ``create_time`` within ``window`` around
    ``now``, or :class:`Rejected`."""
    alerts = tuple(_alert(a, i) for i, a in enumerate(_field(data, "alerts", list, [])))
    config = data.get("converge_config")
    if config is not None and not isinstance(config, dict):
        raise Rejected(Reason.WRONG_TYPE, "converge_config must be an object")
    receiver = _field(data, "notice_receiver", (list, str), [])
    return Action(
        id=_field(data, "id", int),
        create_time=_create_time(data, window, now),
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
        timeout=_timeout(data),
        alerts=alerts,
        converge_config=config,
        time_range=_field(data, "time_range", str, DEFAULT_TIME_RANGE),
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
