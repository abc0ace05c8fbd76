"""bkmonitor's ShieldManager (``converge/shield/manager.py``, ``shielder/saas_config.py``,
``shield_obj.py``) over a shield table.

For a non-parent action, in bkmonitor's order (:meth:`ShieldTable.check`):

1. the global shield (``GlobalShielder``, ``GLOBAL_SHIELD_ENABLED``) shields every action;
2. per alert (``AlertShieldConfigShielder``): the alert module's verdict (``is_shielded``, the
   match bkmonitor caches in ``ALERT_SHIELD_SNAPSHOT``) or a shield config of the action's
   business whose time range covers the decision time and whose dimensions match the alert.
   Matching a config reads the alert's strategy (the strategy table, else the alert's
   snapshot); when there is none, bkmonitor raises ``StrategyNotFound`` and the action is
   skipped (``processor.converge_alarm``);
3. the notice time (``AlarmTimeShielder``): a decision time outside the action's
   ``time_range`` or its strategy's ``uptime.time_ranges`` shields the action.

Times of day are read in the business's time zone (bkmonitor's ``i18n.set_biz``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from operators.converge.context import Action, Alert
from operators.converge.records import Verdict


class ShieldError(ValueError):
    """The shield table is not valid (a config error at start)."""


class Condition(NamedTuple):
    """One dimension condition: ``key`` equals (or, ``negate``, not) one of ``values``."""

    key: str
    values: frozenset[str]
    negate: bool = False

    def matches(self, dimensions: Mapping[str, Any]) -> bool:
        if self.key not in dimensions:
            return False
        found = bool(_strings(dimensions[self.key]) & self.values)
        return found != self.negate


@dataclass(frozen=True)
class ShieldConfig:
    """One shield config (``ShieldObj``): its single time range and its dimension check, all of
    ``conditions`` and, if any, one of the AND groups of ``dimension_conditions``."""

    id: str
    begin: float
    end: float
    conditions: tuple[Condition, ...]
    groups: tuple[tuple[Condition, ...], ...] = ()

    def matches(self, dimensions: Mapping[str, Any], now: float) -> bool:
        if not self.begin <= now <= self.end:
            return False
        if not all(c.matches(dimensions) for c in self.conditions):
            return False
        return not self.groups or any(all(c.matches(dimensions) for c in g) for g in self.groups)


class Shielded(NamedTuple):
    verdict: Verdict
    reason: str


@dataclass(frozen=True)
class ShieldTable:
    """The shields in force: the global switch, shield configs by business, the strategies
    (raw configs by id) and the businesses' time zones."""

    global_shield: bool = False
    configs: Mapping[int, tuple[ShieldConfig, ...]] = field(default_factory=dict)
    strategies: Mapping[int, Mapping[str, Any]] = field(default_factory=dict)
    timezones: Mapping[int, str] = field(default_factory=dict)

    def check(self, action: Action, now: float) -> Shielded | None:
        """Why ``action`` is not run at ``now`` (a shield, or a missing strategy), else None."""
        if self.global_shield:
            return Shielded(Verdict.SHIELD, "global shield is on")
        for alert in action.alerts:
            found = self._alert(action, alert, now)
            if found is not None:
                return found
        return self._notice_time(action, now)

    def _alert(self, action: Action, alert: Alert, now: float) -> Shielded | None:
        if alert.is_shielded:
            by = f" by shield {alert.shield_id}" if alert.shield_id else ""
            return Shielded(Verdict.SHIELD, f"alert {alert.id} is shielded{by}")
        configs = self.configs.get(action.bk_biz_id, ())
        if not configs:
            return None
        strategy_id = alert.strategy_id or action.strategy_id
        if strategy_id and self._strategy(strategy_id, alert) is None:
            return Shielded(Verdict.SKIPPED, f"strategy {strategy_id} deleted or disabled")
        dimensions = {
            **dict(alert.dimensions),
            "strategy_id": strategy_id,
            "level": alert.level or action.alert_level,
            "bk_biz_id": action.bk_biz_id,
        }
        matched = [c.id for c in configs if c.matches(dimensions, now)]
        if matched:
            return Shielded(Verdict.SHIELD, f"alert {alert.id} matches shield {','.join(matched)}")
        return None

    def _strategy(self, strategy_id: int, alert: Alert | None) -> Mapping[str, Any] | None:
        found = self.strategies.get(strategy_id)
        return found if found is not None else (alert.strategy if alert else None)

    def _notice_time(self, action: Action, now: float) -> Shielded | None:
        local = datetime.fromtimestamp(now, ZoneInfo(self.timezones.get(action.bk_biz_id, "UTC")))
        clock = local.strftime("%H:%M:%S")
        start, _, end = action.time_range.partition("--")
        if not _within(start, end, clock):
            return Shielded(
                Verdict.SHIELD, f"{clock} is outside the time range {action.time_range}"
            )
        first = action.alerts[0] if action.alerts else None
        ranges = _uptime(self._strategy(action.strategy_id, first))
        minute = clock[:5]
        if ranges and not any(_within(s, e, minute) for s, e in ranges):
            spans = ", ".join(f"{s}-{e}" for s, e in ranges)
            return Shielded(Verdict.SHIELD, f"{minute} is outside the strategy's uptime {spans}")
        return None


def _within(start: str, end: str, now: str) -> bool:
    """bkmonitor's same-day or across-midnight range check on ``HH:MM[:SS]`` strings."""
    if start <= end:
        return start <= now <= end
    return start <= now or now <= end


def _uptime(strategy: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """``uptime.time_ranges`` of the strategy's first trigger config, as ``(HH:MM, HH:MM)``."""
    detects = strategy.get("detects") if isinstance(strategy, Mapping) else None
    if not isinstance(detects, list) or not detects or not isinstance(detects[0], dict):
        return []
    trigger = detects[0].get("trigger_config")
    uptime = trigger.get("uptime") if isinstance(trigger, dict) else None
    ranges = uptime.get("time_ranges") if isinstance(uptime, dict) else None
    return [
        (_minute(r.get("start"), "00:00"), _minute(r.get("end"), "23:59"))
        for r in ranges or ()
        if isinstance(r, dict)
    ]


def _minute(value: Any, default: str) -> str:
    try:
        return datetime.strptime(str(value), "%H:%M").strftime("%H:%M")
    except ValueError:
        return default


def _strings(value: Any) -> set[str]:
    return {str(v) for v in value} if isinstance(value, list | tuple | set) else {str(value)}


def _equal_conditions(raw: Mapping[str, Any]) -> tuple[Condition, ...]:
    """``dimension_config`` as ``ShieldObj._clean_dimension`` leaves it: keys starting with
    ``_``, values containing ``"00"`` and ``category: all`` dropped; each key an equality."""
    found = []
    for key, value in raw.items():
        if key.startswith("_") or value == "00" or (isinstance(value, list) and "00" in value):
            continue
        if key == "category" and "all" in _strings(value):
            continue
        if key == "dimension_conditions":
            continue
        found.append(Condition(key, frozenset(_strings(value))))
    return tuple(found)


def _groups(raw: Any) -> tuple[tuple[Condition, ...], ...]:
    """``dimension_conditions``: AND groups split at each ``condition: or``; methods eq, neq."""
    groups: list[list[Condition]] = [[]]
    for item in raw if isinstance(raw, list) else ():
        if not isinstance(item, dict) or item.get("method", "eq") not in ("eq", "neq"):
            raise ShieldError(f"dimension condition {item!r}: only eq and neq are supported")
        if item.get("condition") == "or" and groups[-1]:
            groups.append([])
        values = frozenset(_strings(item.get("value")))
        groups[-1].append(Condition(str(item.get("key")), values, item.get("method") == "neq"))
    return tuple(tuple(g) for g in groups if g)


def parse_shield(raw: Any) -> tuple[int, ShieldConfig]:
    """One shield config of the table: its business and its :class:`ShieldConfig`."""
    if not isinstance(raw, dict):
        raise ShieldError(f"a shield config must be an object, not {type(raw).__name__}")
    cycle = raw.get("cycle_config") or {}
    if not isinstance(cycle, dict) or cycle.get("type", 1) not in (1, "1"):
        raise ShieldError(
            f"shield {raw.get('id')}: only single time ranges (type 1), got cycle_config {cycle!r}"
        )
    try:
        biz, begin, end = int(raw["bk_biz_id"]), float(raw["begin_time"]), float(raw["end_time"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ShieldError(f"shield {raw.get('id')}: {exc!r}") from None
    dimension = raw.get("dimension_config") or {}
    if not isinstance(dimension, dict):
        raise ShieldError(f"shield {raw.get('id')}: dimension_config must be an object")
    groups = _groups(dimension.get("dimension_conditions"))
    config = ShieldConfig(str(raw.get("id")), begin, end, _equal_conditions(dimension), groups)
    return biz, config


def shield_table(
    raw: Any, strategies: Mapping[int, Mapping[str, Any]] | None = None
) -> ShieldTable:
    """The shield table from its JSON document (see ``docs/converge.md``)."""
    if not isinstance(raw, dict):
        raise ShieldError("the shield table must be a JSON object")
    listed = raw.get("shields") or []
    if not isinstance(listed, list):
        raise ShieldError(f"shields must be a list of shield configs, got {listed!r}")
    configs: dict[int, list[ShieldConfig]] = {}
    for item in listed:
        biz, config = parse_shield(item)
        configs.setdefault(biz, []).append(config)
    zones = raw.get("timezones") or {}
    if not isinstance(zones, dict):
        raise ShieldError("timezones must map a business id to a time zone name")
    try:
        timezones = {int(biz): str(ZoneInfo(str(name))) for biz, name in zones.items()}
    except (ValueError, KeyError) as exc:
        raise ShieldError(f"timezones: {exc}") from None
    return ShieldTable(
        global_shield=raw.get("global_shield_enabled") is True,
        configs={biz: tuple(found) for biz, found in configs.items()},
        strategies=strategies or {},
        timezones=timezones,
    )


NO_SHIELDS = ShieldTable()
