"""bkmonitor's condition matching for ``agg_condition`` lists (``utils/range/*``).

A condition list is split into OR groups at every entry whose ``condition`` is ``"or"``; a
group matches when all its conditions do. A condition missing its key, method or value is
ignored, and a key the data does not have counts as a match, as in bkmonitor.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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


def _regex_any(patterns: Sequence[Any], text: str) -> bool:
    for pattern in patterns:
        try:
            if re.findall(str(pattern), text):
                return True
        except re.error:
            continue
    return False


def _compare(data: list[Any], wanted: list[Any], test: Callable[[float, float], bool]) -> bool:
    return any(test(d, w) for d in _floats(data) for w in _floats(wanted))


METHODS: dict[str, Callable[[list[Any], list[Any]], bool]] = {
    "eq": lambda d, w: bool(_strings(d) & _strings(w)),
    "neq": lambda d, w: not _strings(d) & _strings(w),
    "include": lambda d, w: any(str(x) in str(v) for v in d for x in w),
    "exclude": lambda d, w: not any(str(x) in str(v) for v in d for x in w),
    "reg": lambda d, w: bool(d) and _regex_any(w, str(d[0])),
    "nreg": lambda d, w: not (bool(d) and _regex_any(w, str(d[0]))),
    "gt": lambda d, w: _compare(d, w, lambda a, b: a > b),
    "gte": lambda d, w: _compare(d, w, lambda a, b: a >= b),
    "lt": lambda d, w: _compare(d, w, lambda a, b: a < b),
    "lte": lambda d, w: _compare(d, w, lambda a, b: a <= b),
    "issuperset": lambda d, w: _strings(d) >= _strings(w),
}


@dataclass(frozen=True)
class Condition:
    key: str
    method: str
    value: tuple[Any, ...]

    def matches(self, lookup: Lookup) -> bool:
        data = lookup(self.key)
        if data is MISSING:
            return True
        return METHODS[self.method](_as_list(data), list(self.value))


@dataclass(frozen=True)
class ConditionSet:
    """OR of AND groups; an empty set matches everything."""

    groups: tuple[tuple[Condition, ...], ...]

    def matches(self, lookup: Lookup) -> bool:
        return not self.groups or any(all(c.matches(lookup) for c in g) for g in self.groups)


def compile_conditions(raw: Sequence[Mapping[str, Any]] | None) -> ConditionSet:
    """Build a :class:`ConditionSet` from bkmonitor's ``agg_condition`` list."""
    groups: list[list[Condition]] = []
    for index, entry in enumerate(raw or ()):
        if index == 0 or entry.get("condition") == "or":
            groups.append([])
        key, method, value = entry.get("key"), entry.get("method"), entry.get("value")
        if not key or method not in METHODS or value in (None, "", []):
            continue
        groups[-1].append(Condition(str(key), str(method), tuple(_as_list(value))))
    return ConditionSet(tuple(tuple(g) for g in groups if g))


def mapping_lookup(data: Mapping[str, Any]) -> Lookup:
    """A lookup over a flat mapping."""
    return lambda key: data.get(key, MISSING)
