"""bkmonitor's condition matching for ``agg_condition`` lists (``utils/range/*``).

A condition list is split into OR groups at every entry whose ``condition`` is ``"or"``; a
group matches when all its conditions do. A condition missing its key, method or value is
ignored, and a key the data does not have counts as a match, as in bkmonitor.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from operators.strategy import objects

MISSING = object()
Lookup = Callable[[str], Any]


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple | set) else [value]


def _strings(values: Iterable[Any]) -> set[str]:
    return {str(v).strip() for v in values}


def _floats(values: Iterable[Any]) -> list[float]:
    out = []
    for value in values:
        try:
            out.append(float(value))
        except (TypeError, ValueError):
            continue
    return out


def _patterns(values: Iterable[Any]) -> list[re.Pattern[str]]:
    """The values as regular expressions; one that does not compile never matches."""
    out = []
    for value in values:
        try:
            out.append(re.compile(str(value)))
        except re.error:
            continue
    return out


Test = Callable[[list[Any]], bool]
"""A condition's test of the looked-up value (as a list)."""


def _eq(wanted: list[Any]) -> Test:
    strings = _strings(wanted)
    return lambda data: not strings.isdisjoint(_strings(data))


def _include(wanted: list[Any]) -> Test:
    texts = [str(w) for w in wanted]
    return lambda data: any(text in str(value) for value in data for text in texts)


def _reg(wanted: list[Any]) -> Test:
    patterns = _patterns(wanted)

    def test(data: list[Any]) -> bool:
        # re.findall finds something (an empty match too) exactly when search finds a match.
        if data:
            text = str(data[0])
            for pattern in patterns:
                if pattern.search(text):
                    return True
        return False

    return test


def _compare(test: Callable[[float, float], bool]) -> Callable[[list[Any]], Test]:
    def compiled(wanted: list[Any]) -> Test:
        numbers = _floats(wanted)
        return lambda data: any(test(d, w) for d in _floats(data) for w in numbers)

    return compiled


def _negated(make: Callable[[list[Any]], Test]) -> Callable[[list[Any]], Test]:
    def compiled(wanted: list[Any]) -> Test:
        test = make(wanted)
        return lambda data: not test(data)

    return compiled


def _superset(wanted: list[Any]) -> Test:
    strings = _strings(wanted)
    return lambda data: _strings(data) >= strings


METHODS: dict[str, Callable[[list[Any]], Test]] = {
    "eq": _eq,
    "neq": _negated(_eq),
    "include": _include,
    "exclude": _negated(_include),
    "reg": _reg,
    "nreg": _negated(_reg),
    "gt": _compare(lambda a, b: a > b),
    "gte": _compare(lambda a, b: a >= b),
    "lt": _compare(lambda a, b: a < b),
    "lte": _compare(lambda a, b: a <= b),
    "issuperset": _superset,
}
"""Each method: given the condition's values, the test of the looked-up value."""


@dataclass(frozen=True)
class Condition:
    key: str
    method: str
    value: tuple[Any, ...]
    test: Test = field(compare=False, repr=False)

    def matches(self, lookup: Lookup) -> bool:
        data = lookup(self.key)
        if data is MISSING:
            return True
        return self.test(_as_list(data))


@dataclass(frozen=True)
class ConditionSet:
    """OR of AND groups; an empty set matches everything."""

    groups: tuple[tuple[Condition, ...], ...]

    def matches(self, lookup: Lookup) -> bool:
        if not self.groups:
            return True
        for group in self.groups:
            for condition in group:
                if not condition.matches(lookup):
                    break
            else:
                return True
        return False


def compile_conditions(raw: Any) -> ConditionSet:
    """Build a :class:`ConditionSet` from bkmonitor's ``agg_condition`` list; one that is not a
    list of objects is a :class:`~operators.strategy.StrategyError`."""
    groups: list[list[Condition]] = []
    for index, entry in enumerate(objects(raw, "agg_condition", "conditions")):
        if index == 0 or entry.get("condition") == "or":
            groups.append([])
        key, method, value = entry.get("key"), entry.get("method"), entry.get("value")
        if (
            not key
            or not isinstance(method, str)
            or method not in METHODS
            or value in (None, "", [])
        ):
            continue
        values = tuple(_as_list(value))
        groups[-1].append(Condition(str(key), str(method), values, METHODS[method](list(values))))
    return ConditionSet(tuple(tuple(g) for g in groups if g))


def mapping_lookup(data: Mapping[str, Any]) -> Lookup:
    """A lookup over a flat mapping."""
    return lambda key: data.get(key, MISSING)
