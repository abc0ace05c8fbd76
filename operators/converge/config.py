"""``converge_config`` normalisation (``converge/processor.py``): forced defaults, illegal
configs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from operators.converge.context import Action

MAX_TIMEDELTA_S = 7 * 86400
"""Longest accepted ``timedelta``/``max_timedelta``: a longer window would keep sleepers
retrying for longer than any converge could matter."""
NOTICE_TIMEDELTA_S = 120
NOTICE_COUNT = 1
MULTI_STRATEGY_COLLECT_WINDOW = 120
MULTI_STRATEGY_COLLECT_THRESHOLD = 3
FUNCTIONS = frozenset(
    {
        "skip_when_success",
        "approve_when_failed",
        "skip_when_proceed",
        "wait_when_proceed",
        "defense",
        "skip_when_exceed",
        "collect",
        "collect_alarm",
        "trigger",
        "relevance",
    }
)

Conditions = tuple[tuple[str, tuple[Any, ...]], ...]


@dataclass(frozen=True)
class ConvergeConfig:
    """An effective converge config. ``conditions`` are the merged, sorted conditions that name
    the converge; ``window_s`` is ``(max_timedelta or timedelta) // 60`` minutes, in seconds, and
    ``max_window_s`` the ``max_timedelta // 60`` minutes alone (0 when unset)."""

    func: str
    count: int
    timedelta_s: int
    window_s: int
    max_window_s: int
    conditions: Conditions
    need_biz_converge: bool


def _conditions(raw: Any) -> dict[str, tuple[Any, ...]]:
    found: dict[str, tuple[Any, ...]] = {}
    for condition in raw if isinstance(raw, list) else ():
        if isinstance(condition, dict) and isinstance(condition.get("dimension"), str):
            value = condition.get("value")
            found[condition["dimension"]] = tuple(value) if isinstance(value, list) else (value,)
    return found


def _number(raw: dict, name: str, default: int) -> int:
    value = raw.get(name, default)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def normalise(action: Action, context: dict[str, Any]) -> ConvergeConfig | str:
    """The effective config of ``action``, or a sentence saying why it is not converged."""
    raw = action.converge_config
    if action.plugin_type == "notice" and action.notice_way == "voice":
        return "voice notices skip converge"
    if not raw:
        return "no converge_config"
    if raw.get("is_enabled", False) is False:
        return "converge_config is not enabled"
    if action.is_parent:
        return "parent actions are not converged"
    func = raw.get("converge_func")
    if not isinstance(func, str) or func not in FUNCTIONS:
        return f"unknown converge_func {func!r}"
    original = _conditions(raw.get("condition"))
    timedelta_s = _number(raw, "timedelta", 0)
    count = _number(raw, "count", 1)
    effective = dict(original)
    if action.plugin_type == "notice":
        timedelta_s, count = NOTICE_TIMEDELTA_S, NOTICE_COUNT
        if context.get("notice_info"):
            effective = {"notice_info": ("self",)}
    elif not effective:
        effective = {"action_info": ("self",)}
    if timedelta_s <= 0:
        return f"timedelta {timedelta_s} is not positive"
    max_min = _number(raw, "max_timedelta", 0) // 60
    if max(timedelta_s, max_min * 60) > MAX_TIMEDELTA_S:
        return f"timedelta or max_timedelta over {MAX_TIMEDELTA_S} s"
    if count < 0:
        return f"count {count} is negative"
    merged = {**effective, **original}
    return ConvergeConfig(
        func=func,
        count=count,
        timedelta_s=timedelta_s,
        window_s=(max_min or timedelta_s // 60) * 60,
        max_window_s=max_min * 60,
        conditions=tuple(sorted(merged.items())),
        need_biz_converge=bool(raw.get("need_biz_converge") and raw.get("sub_converge_config")),
    )
