"""Which (strategy, item) pairs an alert belongs to."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from operators import _native
from operators.conditions import MISSING, ConditionSet, Lookup, compile_conditions
from operators.memo import remember
from operators.strategy import Strategy


class Target(NamedTuple):
    """A (strategy, item) pair. (A named tuple: hashed and compared per alert.)"""

    strategy_id: int
    item_id: int

    def fields(self) -> dict[str, int]:
        """The fields of the target's key templates."""
        return {"strategy_id": self.strategy_id, "item_id": self.item_id}


def alert_lookup(event: Mapping[str, Any]):
    """Condition lookup over an alert: ``tags.NAME`` reads the tag NAME; a bare NAME the
    top-level field NAME, else the tag NAME (:func:`_read`)."""
    tags = {tag["key"]: tag["value"] for tag in event.get("tags", ())}

    def lookup(key: str) -> Any:
        field, tag = _read(key)
        if field is not None and field in event:
            return event[field]
        return tags.get(tag, MISSING)

    return lookup


def _read(key: str) -> tuple[str | None, str]:
    """How a condition's ``key`` reads an alert: (the field it reads first, or None; the tag it
    reads then). :func:`alert_lookup` and ``_native.route_key`` both read by it."""
    return (None, key[len("tags.") :]) if key.startswith("tags.") else (key, key)


@dataclass(frozen=True)
class _NameRule:
    bk_biz_id: str
    target: Target
    conditions: ConditionSet


_ROUTES_KEPT = 4096
"""How many routes an alert name remembers (by business and the values its conditions read)."""


class _NameRoutes:
    """The rules of one alert name, and the routes worked out from them, remembered by the
    alert's business and the values (with their types) of the keys the rules' conditions read:
    the conditions read nothing else, so equal keys route alike."""

    def __init__(self) -> None:
        self.rules: list[_NameRule] = []
        self.keys: tuple[str, ...] = ()
        self.reads: tuple[tuple[str | None, str], ...] = ()
        self.routes: dict[tuple, tuple[Target, ...]] = {}

    def add(self, rule: _NameRule) -> None:
        self.rules.append(rule)
        read = (c.key for group in rule.conditions.groups for c in group)
        self.keys = tuple(dict.fromkeys((*self.keys, *read)))
        self.reads = tuple(_read(key) for key in self.keys)

    def route(self, event: Mapping[str, Any]) -> tuple[Target, ...]:
        # (bk_biz_id, *values read, *their types): equal keys route alike. None when the
        # business id is not a str or an int, a value of another type (a float: 0.0 == -0.0;
        # a list) or the event is unusual. (An int id and a str one are never equal.)
        key = _native.route_key(event, self.reads, MISSING)
        if key is None:
            return self.matching(str(event["bk_biz_id"]), self.lookup(event))
        found = self.routes.get(key)
        if found is None:
            found = self.matching(str(key[0]), self.lookup(event))
            remember(self.routes, key, found, _ROUTES_KEPT)
        return found

    def lookup(self, event: Mapping[str, Any]) -> Lookup | None:
        """The lookup the rules' conditions read ``event`` by, when any rule has conditions."""
        return alert_lookup(event) if self.keys else None

    def matching(self, biz: str, lookup: Lookup | None) -> tuple[Target, ...]:
        """The targets of the rules of ``biz`` whose conditions match (``lookup`` is given
        when any rule has conditions)."""
        found = {
            rule.target
            for rule in self.rules
            if rule.bk_biz_id == biz
            and (not rule.conditions.groups or rule.conditions.matches(lookup))
        }
        return tuple(sorted(found)) if len(found) > 1 else tuple(found)


class AlertRouter:
    """Routes cleaned alerts: by ``strategy_id`` when set, else by ``alert_name``.

    An alert with ``strategy_id`` goes to every item of that strategy. One without goes to
    the items whose query config names its ``alert_name`` in the same business, when the
    config's ``agg_condition`` (if any) matches the alert's fields and tags.
    """

    def __init__(self, strategies: Iterable[Strategy]) -> None:
        self._by_id: dict[int, tuple[Target, ...]] = {}
        self._by_name: dict[str, _NameRoutes] = defaultdict(_NameRoutes)
        for strategy in strategies:
            self._by_id[strategy.id] = tuple(Target(strategy.id, i.id) for i in strategy.items)
            for item in strategy.items:
                for config in item.query_configs:
                    name = config.get("alert_name")
                    if name:
                        self._by_name[name].add(
                            _NameRule(
                                str(strategy.bk_biz_id),
                                Target(strategy.id, item.id),
                                compile_conditions(config.get("agg_condition")),
                            )
                        )

    def route(self, event: Mapping[str, Any]) -> tuple[Target, ...]:
        strategy_id = event.get("strategy_id")
        if strategy_id:
            return self._by_id.get(int(strategy_id), ())
        routes = self._by_name.get(event["alert_name"])
        return () if routes is None else routes.route(event)
