"""Rejected input: why a message could not be taken, and its dead-letter record."""

from __future__ import annotations

import reprlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from operators.json_bytes import json_bytes

# The DLQ keeps this much of a rejected message's bytes, so that a huge message still fits
# under the broker's size limit. ``raw_bytes`` says how long it really was.
DLQ_RAW_LIMIT = 64 * 1024
# An error text never echoes more of a value than this; the DLQ record keeps the raw bytes.
ERROR_TEXT_LIMIT = 300

_preview = reprlib.Repr()
_preview.maxlevel, _preview.maxstring, _preview.maxother = 2, 60, 60
_preview.maxlist = _preview.maxdict = 4


def preview(value: object) -> str:
    """A short, bounded ``repr`` of a value for an error text: safe for any nesting depth."""
    return _preview.repr(value)


def bounded_text(text: str, limit: int = ERROR_TEXT_LIMIT) -> str:
    """``text`` cut to ``limit`` characters and made valid UTF-8 (lone surrogates replaced)."""
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.encode("utf8", errors="replace").decode("utf8")


class Reason(StrEnum):
    """Bounded set of rejection reasons (a metric label)."""

    TOO_LARGE = "too_large"
    EMPTY = "empty"
    NOT_JSON = "not_json"
    NOT_OBJECT = "not_object"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    KAFKA_ERROR = "kafka_error"
    TOO_DEEP = "too_deep"
    TOO_LONG = "too_long"
    OUT_OF_RANGE = "out_of_range"
    FUTURE_TIME = "future_time"
    MILLISECOND_TIME = "millisecond_time"
    ANCIENT_TIME = "ancient_time"
    TOO_OLD = "too_old"
    INTERNAL_ERROR = "internal_error"


class Rejected(Exception):
    """Raised by parsing and cleaning; carries a reason code and a human sentence."""

    def __init__(self, reason: Reason, error: str) -> None:
        error = bounded_text(error)
        super().__init__(reason, error)
        self.reason = reason
        self.error = error

    def __str__(self) -> str:
        return f"{self.reason}: {self.error}"


class SourceRecord(NamedTuple):
    """One input message, independent of the stream framework that read it. (A named tuple:
    one is made per message, and tuples build fastest.)"""

    topic: str
    partition: int
    offset: int
    value: bytes | None
    timestamp_ms: int | None = None


@dataclass(frozen=True)
class Rejection:
    """A rejected message with where it came from; serialises to the DLQ record."""

    reason: Reason
    error: str
    record: SourceRecord

    @classmethod
    def from_exception(cls, step: str, exc: Exception, record: SourceRecord) -> Rejection:
        """The rejection of ``record`` by a step that raised ``exc``: the reason a
        :class:`Rejected` carries, else ``internal_error`` naming the step and the exception
        type, with a bounded text (safe even for a ``RecursionError``)."""
        if isinstance(exc, Rejected):
            return cls(exc.reason, exc.error, record)
        try:
            detail = str(exc)
        except Exception:  # an exception whose own text fails to build
            detail = "(no text)"
        text = f"{step}: {type(exc).__name__}: {detail[:ERROR_TEXT_LIMIT]}"
        return cls(Reason.INTERNAL_ERROR, bounded_text(text), record)

    def to_dlq(self, flow: str) -> bytes:
        raw = self.record.value or b""
        return json_bytes(
            {
                "flow": flow,
                "reason": str(self.reason),
                "error": self.error,
                "topic": self.record.topic,
                "partition": self.record.partition,
                "offset": self.record.offset,
                "raw": raw[:DLQ_RAW_LIMIT].decode("utf8", errors="replace"),
                "raw_bytes": len(raw),
            }
        )


def messages(
    inputs: Iterable[SourceRecord | Rejection], rejected: list[Rejection]
) -> Iterator[SourceRecord]:
    """The records of a batch as read from Kafka; the consumer's rejections among them go
    straight to ``rejected``."""
    for item in inputs:
        if isinstance(item, Rejection):
            rejected.append(item)
        else:
            yield item
