"""JSON kept by the flows: orjson's bytes in an object of their own size."""

from __future__ import annotations

import tracemalloc

import orjson
import pytest

from operators import _native
from operators.json_bytes import json_bytes

ALERT = {"id": "x" * 32, "description": "y" * 500, "tags": [{"key": "k", "value": "v"}]}


def held_per_value(make) -> float:
    """Bytes the allocator holds per value of 1,000 made and kept."""
    tracemalloc.start()
    try:
        kept = [make() for _ in range(1000)]
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(kept) == 1000
    return held / 1000


def test_json_bytes_are_orjsons_bytes():
    assert json_bytes(ALERT) == orjson.dumps(ALERT)
    unsorted = {"b": 1, "a": [None, 1.5]}
    assert json_bytes(unsorted, orjson.OPT_SORT_KEYS) == b'{"a":[null,1.5],"b":1}'


def test_json_bytes_hold_their_length_not_orjsons_buffer():
    length = len(orjson.dumps(ALERT))
    assert held_per_value(lambda: orjson.dumps(ALERT)) > 4 * length  # the reason for the copy
    assert held_per_value(lambda: json_bytes(ALERT)) < length + 100


def test_exact_bytes_takes_bytes_only():
    assert _native.exact_bytes(b"") == b""
    with pytest.raises(TypeError):
        _native.exact_bytes(bytearray(b"x"))
