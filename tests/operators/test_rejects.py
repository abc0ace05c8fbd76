"""Decoding a message into a JSON object, and the dead-letter record of a rejection."""

from __future__ import annotations

import orjson
import pytest

from operators.rejects import (
    DLQ_RAW_LIMIT,
    Reason,
    Rejected,
    Rejection,
    SourceRecord,
    decode_object,
)


def record(value: bytes | None) -> SourceRecord:
    return SourceRecord("alarmflow.alert", 2, 41, value)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, Reason.EMPTY),
        (b"", Reason.EMPTY),
        (b"{not json", Reason.NOT_JSON),
        (b"[1, 2]", Reason.NOT_OBJECT),
        (b'"text"', Reason.NOT_OBJECT),
        (b'{"a": "' + b"x" * (2 << 20) + b'"}', Reason.TOO_LARGE),
    ],
)
def test_what_is_not_a_json_object_is_rejected_with_its_reason(value, reason):
    with pytest.raises(Rejected) as caught:
        decode_object(record(value), max_bytes=1 << 20)
    assert caught.value.reason == reason
    assert caught.value.error


def test_an_object_is_returned():
    assert decode_object(record(b'{"a": 1}'), max_bytes=100) == {"a": 1}


def test_dlq_record_says_what_where_and_why_and_truncates_huge_input():
    raw = b"x" * (DLQ_RAW_LIMIT * 3)
    dlq = orjson.loads(Rejection(Reason.TOO_LARGE, "too big", record(raw)).to_dlq("alert"))
    assert dlq == {
        "flow": "alert",
        "reason": "too_large",
        "error": "too big",
        "topic": "alarmflow.alert",
        "partition": 2,
        "offset": 41,
        "raw": "x" * DLQ_RAW_LIMIT,
        "raw_bytes": DLQ_RAW_LIMIT * 3,
    }


def test_rejected_survives_pickling_for_bytewax():
    import pickle

    error = pickle.loads(pickle.dumps(Rejected(Reason.WRONG_TYPE, "bad")))
    assert (error.reason, error.error, str(error)) == (Reason.WRONG_TYPE, "bad", "wrong_type: bad")
