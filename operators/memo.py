"""Bounded tables of values worked out once: what recurs from record to record (event times,
series digests, a strategy item's keys) is remembered, and a table that fills up is emptied
rather than grown."""

from __future__ import annotations

from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


def remember(table: dict[K, V], key: K, value: V, kept: int) -> V:
    """Store ``value`` under ``key`` in ``table`` (emptied first when it holds ``kept``
    entries) and return it. Callers look the key up themselves: a hit costs one ``dict.get``."""
    if len(table) >= kept:
        table.clear()
    table[key] = value
    return value
