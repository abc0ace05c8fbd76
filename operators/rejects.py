"""Rejected input: why a message could not be taken, and its dead-letter record."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import orjson

# The DLQ keeps this much of a rejected message's bytes, so that a huge message still fits
# under the broker's size limit. ``raw_bytes`` says how long it really was.
DLQ_RAW_LIMIT = 64 * 1024


class Reason(StrEnum):
    """Bounded set of rejection reasons (a metric label)."""

    TOO_LARGE = "too_large"
    EMPTY = "empty"
    NOT_JSON = "not_json"
    NOT_OBJECT = "not_object"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    KAFKA_ERROR = "kafka_error"


class Rejected(Exception):
    """Raised by parsing and cleaning; carries a reason code and a human sentence."""

    def __init__(self, reason: Reason, error: str) -> None:
        super().__init__(reason, error)
        self.reason = reason
        self.error = error

    def __str__(self) -> str:
        return f"{self.reason}: {self.error}"


@dataclass(frozen=True)
class SourceRecord:
    """One input message, independent of the stream framework that read it."""

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

    def to_dlq(self, flow: str) -> bytes:
        raw = self.record.value or b""
        return orjson.dumps(
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


def decode_object(record: SourceRecord, max_bytes: int) -> dict:
    """The message's JSON object, or :class:`Rejected` with the reason it is not one."""
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
    return data
