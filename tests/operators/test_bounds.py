"""Bounds at the door: decoding a message into a bounded JSON object, and the time window."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators import _native
from operators.bounds import (
    EPOCH_2000,
    MAX_DEPTH,
    MAX_ITEMS,
    MAX_STRING_CHARS,
    TimeWindow,
    check_structure,
    decode_object,
)
from operators.rejects import Reason, Rejected, SourceRecord

NOW = 1_764_000_000.0


def record(value: bytes | None) -> SourceRecord:
    return SourceRecord("alarmflow.alert", 2, 41, value)


def nested(depth: int) -> bytes:
    return b'{"a": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, Reason.EMPTY),
        (b"", Reason.EMPTY),
        (b"{not json", Reason.NOT_JSON),
        (b'{"a": 1', Reason.NOT_JSON),
        (b'{"a": NaN}', Reason.NOT_JSON),
        (b'{"a": Infinity}', Reason.NOT_JSON),
        (b'{"a": 1e400}', Reason.NOT_JSON),
        (b'{"a": "\\ud800"}', Reason.NOT_JSON),
        (b'{"a": "\xff\xfe"}', Reason.NOT_JSON),
        (b"\x00\x01\x02", Reason.NOT_JSON),
        (b"[1, 2]", Reason.NOT_OBJECT),
        (b'"text"', Reason.NOT_OBJECT),
        (b'{"a": "' + b"x" * (5 << 20) + b'"}', Reason.TOO_LARGE),
        (nested(MAX_DEPTH + 1), Reason.TOO_DEEP),
        (nested(1000), Reason.TOO_DEEP),
        (b'{"a": "' + b"x" * (MAX_STRING_CHARS + 1) + b'"}', Reason.TOO_LONG),
        (b'{"a": [' + b",".join([b"1"] * (MAX_ITEMS + 1)) + b"]}", Reason.TOO_LONG),
        (b'{"a": 9223372036854775808}', Reason.OUT_OF_RANGE),
        (b'{"a": -9223372036854775808}', Reason.OUT_OF_RANGE),
    ],
)
def test_what_is_not_a_bounded_json_object_is_rejected_with_its_reason(value, reason):
    with pytest.raises(Rejected) as caught:
        decode_object(record(value), max_bytes=4 << 20)
    assert caught.value.reason == reason
    assert caught.value.error


@pytest.mark.parametrize(
    "value",
    [
        b'{"a": 1}',
        nested(MAX_DEPTH),
        b'{"a": 9223372036854775807, "b": -9223372036854775807}',
        b'{"a": "' + b"x" * MAX_STRING_CHARS + b'"}',
        b'{"a": 1, "a": 2}',
    ],
)
def test_an_object_within_bounds_is_returned(value):
    assert isinstance(decode_object(record(value), max_bytes=4 << 20), dict)


def test_duplicated_keys_keep_the_last_value_as_python_json_does():
    assert decode_object(record(b'{"a": 1, "a": 2}'), max_bytes=100) == {"a": 2}


def test_keys_are_bounded_like_strings():
    with pytest.raises(Rejected) as caught:
        check_structure({"k" * (MAX_STRING_CHARS + 1): 1})
    assert caught.value.reason == Reason.TOO_LONG


WINDOW = TimeWindow(past_s=30 * 86400, future_s=3600)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (NOW * 1000, Reason.MILLISECOND_TIME),
        (NOW + 3601, Reason.FUTURE_TIME),
        (2**63 - 1, Reason.FUTURE_TIME),
        (1e300, Reason.FUTURE_TIME),
        (NOW * 1_000_000, Reason.FUTURE_TIME),
        (EPOCH_2000 - 1, Reason.ANCIENT_TIME),
        (0, Reason.ANCIENT_TIME),
        (-1, Reason.ANCIENT_TIME),
        (NOW - 30 * 86400 - 1, Reason.TOO_OLD),
        ("1764000000", Reason.WRONG_TYPE),
        (True, Reason.WRONG_TYPE),
        ([NOW], Reason.WRONG_TYPE),
        (float("nan"), Reason.OUT_OF_RANGE),
        (float("inf"), Reason.OUT_OF_RANGE),
    ],
)
def test_times_outside_the_window_are_rejected_with_their_own_reason(value, reason):
    with pytest.raises(Rejected) as caught:
        WINDOW.check(value, NOW, "time")
    assert caught.value.reason == reason
    assert "'time'" in caught.value.error


@pytest.mark.parametrize("value", [NOW, NOW + 3600, NOW - 30 * 86400, int(NOW), NOW - 0.5])
def test_times_inside_the_window_are_returned_as_floats(value):
    assert WINDOW.check(value, NOW, "time") == float(value)


def _nested(depth: int, members: int, number: int, text: int) -> dict:
    value: object = {"n": number, "s": "x" * text, "m": [0] * members}
    for _ in range(depth):
        value = [value]
    return {"v": value}


@settings(max_examples=60)
@given(
    st.sampled_from([0, 1, MAX_DEPTH - 2, MAX_DEPTH - 1, MAX_DEPTH]),
    st.sampled_from([0, 3, MAX_ITEMS - 1, MAX_ITEMS, MAX_ITEMS + 1]),
    st.sampled_from([0, 10**18, 2**63 - 1, 2**63, -(2**63), 10**19 - 1]),
    st.sampled_from([0, 10, MAX_STRING_CHARS, MAX_STRING_CHARS + 1]),
)
def test_the_byte_scans_reject_what_the_walk_rejects(depth, members, number, text):
    """``decode_object`` walks a value only when its bytes say a bound may be exceeded: it
    rejects exactly what walking every value would."""
    raw = orjson.dumps(_nested(depth, members, number, text))
    try:
        check_structure(orjson.loads(raw))
        walked = None
    except Rejected as exc:
        walked = exc.reason
    try:
        decode_object(SourceRecord("t", 0, 0, raw), 1 << 30)
        scanned = None
    except Rejected as exc:
        scanned = exc.reason
    assert scanned == walked


def bytes_scan_in_python(raw: bytes, chars: int, items: int, depth: int, digits: int) -> bool:
    """The scan as it was written in Python before it moved to C (operators/_native.c)."""
    as_hash = raw.translate(bytes.maketrans(b"0123456789", b"#" * 10))
    return (
        len(raw) > chars
        or (len(raw) >= items and raw.count(b",") >= items)
        or raw.count(b"[") + raw.count(b"{") > depth
        or b"#" * digits in as_hash
    )


@given(
    st.lists(st.sampled_from([b"0", b"7", b"#", b",", b"[", b"{", b"]", b"a", b'"']), max_size=60),
    st.integers(0, 70),
    st.integers(0, 12),
    st.integers(0, 12),
    st.integers(1, 8),
)
def test_the_c_bytes_scan_is_the_python_one(parts, chars, items, depth, digits):
    raw = b"".join(parts)
    expected = bytes_scan_in_python(raw, chars, items, depth, digits)
    assert _native.may_exceed_bounds(raw, chars, items, depth, digits) is expected
