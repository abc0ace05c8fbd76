"""The dead-letter record of a rejection, and rejections made from exceptions."""

from __future__ import annotations

import orjson

from operators.rejects import (
    DLQ_RAW_LIMIT,
    ERROR_TEXT_LIMIT,
    Reason,
    Rejected,
    Rejection,
    SourceRecord,
    preview,
)


def record(value: bytes | None) -> SourceRecord:
    return SourceRecord("alarmflow.alert", 2, 41, value)


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


def test_an_exception_becomes_internal_error_naming_step_and_type():
    rejection = Rejection.from_exception("route", KeyError("strategy_id"), record(b"{}"))
    assert rejection.reason == Reason.INTERNAL_ERROR
    assert rejection.error == "route: KeyError: 'strategy_id'"


def test_a_rejected_keeps_its_reason():
    exc = Rejected(Reason.WRONG_TYPE, "field 'x' must be a number")
    assert Rejection.from_exception("clean", exc, record(b"{}")).reason == Reason.WRONG_TYPE


def test_error_texts_are_bounded_and_valid_utf8():
    exc = ValueError("\ud800" + "v" * 10_000)
    error = Rejection.from_exception("clean", exc, record(b"{}")).error
    assert len(error) <= ERROR_TEXT_LIMIT
    error.encode("utf8")
    assert len(Rejected(Reason.WRONG_TYPE, "w" * 10_000).error) <= ERROR_TEXT_LIMIT


def test_preview_is_safe_at_any_depth():
    nested: list = []
    for _ in range(10_000):
        nested = [nested]
    assert preview(nested) == "[[[...]]]"
    assert len(preview("x" * 10_000)) < 70
