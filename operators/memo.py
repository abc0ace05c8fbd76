"""Bounded tables of values worked out once: what recurs from record to record (event times,
series digests, a strategy item's keys) is remembered, and a table that fills up is emptied
rather than grown."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

K = TypeVar("K")
V = TypeVar("V")


def remember(table: dict[K, V], key: K, value: V, kept: int) -> V:
    """Store ``value`` under ``key`` in ``table`` (emptied first when it holds ``kept``
    entries) and return it. Callers look the key up themselves: a hit costs one ``dict.get``."""
    if len(table) >= kept:
        table.clear()
    table[key] = value
    return value


_EXACT = frozenset({str, int, bool, type(None)})
"""Types whose equal values always print alike (not floats: ``0.0 == -0.0``; ``1 == True``
across types is told apart by the types in the key)."""


def exact_key(values: Iterable[Any]) -> tuple | None:
    """A key for remembering what is worked out from ``values`` as they print (a digest of
    their ``str()``, their JSON): the values and their types, or ``None`` when one of them is
    not a string, integer, boolean or None."""
    values = tuple(values)
    types = tuple(map(type, values))
    if not _EXACT.issuperset(types):
        return None
    return (*values, *types)
