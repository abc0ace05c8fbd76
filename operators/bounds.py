"""Bounds at the door: what a message may contain before any step looks at it.

:func:`decode_object` turns a Kafka message into a JSON object or a :class:`Rejected` with the
reason, after checking its size, nesting depth, string and container sizes and integer range,
so that no later step meets a value it could choke on (a ``RecursionError`` on a field nested
1,000 levels deep, an overflow on an integer wider than 64 bits). :class:`TimeWindow` checks
an event time against a window around now: a time in milliseconds, a time in the future, a
time before 2000 and a time older than the window each have their own reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import orjson

from operators import _native
from operators.rejects import Reason, Rejected, SourceRecord, preview

MAX_DEPTH = 32
"""Deepest nesting of objects and lists (bkmonitor's messages nest five levels at most)."""
MAX_STRING_CHARS = 64 * 1024
"""Longest string value or key."""
MAX_ITEMS = 10_000
"""Most members of one object or list."""
INT_LIMIT = 1 << 63
"""Integers must lie in ``(-2**63, 2**63)``: Redis, Lua and bkmonitor's models hold 64 bits."""


def within_64_bits(number: int) -> bool:
    """Whether ``number`` lies within :data:`INT_LIMIT`."""
    return -INT_LIMIT < number < INT_LIMIT


EPOCH_2000 = 946_684_800.0
"""2000-01-01T00:00:00Z: no event time of bkmonitor's data is earlier."""

_LONG_NUMBER = 19
"""19 digits in a row: a number that may not fit in 64 bits. The scan counts a ``#`` as a digit
too; it can only make the check walk the value, never skip it."""


def decode_object(record: SourceRecord, max_bytes: int) -> dict[str, Any]:
    """The message's JSON object within the bounds above, or :class:`Rejected` with the
    reason it is not one."""
    raw = record.value
    if not raw:
        raise Rejected(Reason.EMPTY, "message has no value")
    if len(raw) > max_bytes:
        raise Rejected(Reason.TOO_LARGE, f"message is {len(raw)} bytes, limit is {max_bytes}")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Rejected(Reason.NOT_JSON, f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise Rejected(Reason.NOT_OBJECT, f"expected a JSON object, got {type(data).__name__}")
    if _may_exceed_bounds(raw):
        check_structure(data)
    return data


def _may_exceed_bounds(raw: bytes) -> bool:
    """False when the bytes alone show that no bound can be exceeded (the common case, decided
    by one scan of the bytes in C instead of a walk of the decoded value)."""
    return _native.may_exceed_bounds(raw, MAX_STRING_CHARS, MAX_ITEMS, MAX_DEPTH, _LONG_NUMBER)


def check_structure(value: Any) -> None:
    """Raise :class:`Rejected` when ``value`` nests deeper than :data:`MAX_DEPTH`, holds a
    string longer than :data:`MAX_STRING_CHARS`, a container larger than :data:`MAX_ITEMS`,
    or an integer outside the 64-bit range. Iterative: safe at any depth."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise Rejected(Reason.TOO_DEEP, f"nested deeper than {MAX_DEPTH} levels")
            if len(item) > MAX_ITEMS:
                raise Rejected(
                    Reason.TOO_LONG, f"a container has {len(item)} members, limit is {MAX_ITEMS}"
                )
            members = item.values() if isinstance(item, dict) else item
            if isinstance(item, dict):
                stack.extend((key, depth) for key in item)
            stack.extend((member, depth + 1) for member in members)
        elif isinstance(item, str):
            if len(item) > MAX_STRING_CHARS:
                raise Rejected(
                    Reason.TOO_LONG,
                    f"a string has {len(item)} characters, limit is {MAX_STRING_CHARS}",
                )
        elif isinstance(item, int) and not within_64_bits(item):
            raise Rejected(Reason.OUT_OF_RANGE, f"integer {preview(item)} is wider than 64 bits")


def finite_number(value: Any, field: str) -> float:
    """``value`` as a finite float, or :class:`Rejected` (booleans are not numbers)."""
    kind = type(value)
    if (
        kind is not int
        and kind is not float
        and (kind is bool or not isinstance(value, int | float))
    ):
        raise Rejected(Reason.WRONG_TYPE, f"field '{field}' must be a number, got {preview(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise Rejected(Reason.OUT_OF_RANGE, f"field '{field}' is not finite")
    return number


@dataclass(frozen=True)
class TimeWindow:
    """Event times accepted around now: at most ``past_s`` before it, ``future_s`` after it,
    never before 2000 (``ALARMFLOW_MAX_PAST_S``, ``ALARMFLOW_MAX_FUTURE_S``)."""

    past_s: float
    future_s: float

    def check(self, value: Any, now: float, field: str) -> float:
        """``value`` (epoch seconds) as a float, or :class:`Rejected` with the reason it lies
        outside the window."""
        ts = finite_number(value, field)
        latest = now + self.future_s
        if ts > latest:
            if self.earliest(now) <= ts / 1000 <= latest:
                raise Rejected(
                    Reason.MILLISECOND_TIME,
                    f"field '{field}' = {preview(value)} looks like epoch milliseconds; "
                    "expected epoch seconds",
                )
            raise Rejected(
                Reason.FUTURE_TIME,
                f"field '{field}' = {preview(value)} is over {self.future_s:.0f}s ahead of now",
            )
        if ts < EPOCH_2000:
            raise Rejected(
                Reason.ANCIENT_TIME, f"field '{field}' = {preview(value)} is before 2000"
            )
        if ts < now - self.past_s:
            raise Rejected(
                Reason.TOO_OLD,
                f"field '{field}' = {preview(value)} is over {self.past_s:.0f}s before now",
            )
        return ts

    def earliest(self, now: float) -> float:
        """The earliest accepted time at ``now``."""
        return max(EPOCH_2000, now - self.past_s)
