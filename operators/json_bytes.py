"""JSON as the flows keep it: orjson's bytes, in an object of their own size.

``orjson.dumps`` (3.13) returns its result in the buffer it wrote it into, 8 KiB whatever the
length: 20,000 alerts of 600 bytes each held 160 MiB as orjson returned them, 13 MiB as copies.
A flow keeps each record's JSON until Redis has it (up to 10,000 records ahead of the writer),
so every JSON value a flow keeps goes through :func:`json_bytes`. The copy is one ``memcpy`` of
the JSON's length.
"""

from __future__ import annotations

from typing import Any

import orjson

from operators import _native


def json_bytes(value: Any, option: int | None = None) -> bytes:
    """``orjson.dumps(value, option=option)``, copied into an object of its own size."""
    return _native.exact_bytes(orjson.dumps(value, option=option))
