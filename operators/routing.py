"""Which (strategy, item) pairs an alert belongs to."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from operators.conditions import MISSING, ConditionSet, compile_conditions
from operators.strategy import Strategy


class Target(NamedTuple):
    """A (strategy, item) pair. (A named tuple: hashed and compared per alert.)"""

    strategy_id: int
    item_id: int

    def fields(self) -> dict[str, int]:
        """The fields of the target's key templates."""
        return {"strategy_id": self.strategy_id, "item_id": self.item_id}


def alert_lookup(event: Mapping[str, Any]):
    """Condition lookup over an alert: ``tags.NAME`` or a bare tag name, else a top-level field."""
    tags = {tag["key"]: tag["value"] for tag in event.get("tags", ())}

    def lookup(key: str) -> Any:
        if key.startswith("tags."):
            return tags.get(key[len("tags.") :], MISSING)
        if key in event:
            return event[key]
        return tags.get(key, MISSING)

    return lookup


@dataclass(frozen=True)
class _NameRule:
    bk_biz_id: str
    target: Target
    conditions: ConditionSet


class AlertRouter:
    """Routes cleaned alerts: by ``strategy_id`` when set, else by ``alert_name``.

    An alert with ``strategy_id`` goes to every item of that strategy. One without goes to
    the items whose query config names its ``alert_name`` in the same business, when the
    config's ``agg_condition`` (if any) matches the alert's fields and tags.
    """

    def __init__(self, strategies: Iterable[Strategy]) -> None:
        self._by_id: dict[int, tuple[Target, ...]] = {}
        self._by_name: dict[str, list[_NameRule]] = defaultdict(list)
        for strategy in strategies:
            self._by_id[strategy.id] = tuple(Target(strategy.id, i.id) for i in strategy.items)
            for item in strategy.items:
                for config in item.query_configs:
                    name = config.get("alert_name")
                    if name:
                        self._by_name[name].append(
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
        rules = self._by_name.get(event["alert_name"], ())
        if not rules:
            return ()
        biz = str(event["bk_biz_id"])
        lookup = None
        found = set()
        for rule in rules:
            if rule.bk_biz_id != biz:
                continue
            if rule.conditions.groups:
                if lookup is None:
                    lookup = alert_lookup(event)
                if not rule.conditions.matches(lookup):
                    continue
            found.add(rule.target)
        return tuple(sorted(found)) if len(found) > 1 else tuple(found)
