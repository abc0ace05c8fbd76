"""Hostile messages: what a broken or malicious producer can put on a topic.

- :func:`invalid` holds messages no flow may accept (not JSON, not an object, too large, too
  deep, invalid UTF-8, lone surrogates, NaN and Infinity, truncated JSON, random bytes).
- :func:`mutants` gives every field of a valid message (and of the objects it nests, down to
  three levels, through the first member of each list) every wrong type and a missing value.
  A flow may accept some of them, as bkmonitor does (a severity of ``"x"`` becomes 3): what a
  flow must do is survive each and account for it.
- :func:`duplicated_keys` writes a valid message with every top-level key twice.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import orjson

from operators.bounds import MAX_DEPTH


def _deep(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = {"k": [value]}
    return value


WRONG_VALUES: tuple[Any, ...] = (
    None,
    True,
    0,
    -1,
    2**63 - 1,
    -(2**63) + 1,
    1.5,
    1e300,
    -1e300,
    "",
    "x",
    "9" * 30,
    "\u0000\u202e",
    "💥" * 100,
    [],
    [None, 1, "x", {}],
    {},
    {"key": "value"},
    _deep(MAX_DEPTH // 2),
)
"""Values of every JSON type, at the edges of every range, that no field expects all of."""


def invalid(template: dict[str, Any], seed: int = 7) -> list[bytes]:
    """Messages that no flow may accept, each a different way of being broken."""
    rng = random.Random(seed)
    valid = orjson.dumps(template)
    deep = b'{"a": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    return [
        b"",
        b"not json at all",
        valid[: len(valid) // 2],
        valid + b"}",
        b'{"a": NaN}',
        b'{"a": Infinity, "b": -Infinity}',
        b'{"a": "\\ud800"}',
        b'{"a": "\xff\xfe\xfd"}',
        b"\xef\xbb\xbf" + b"\xc3\x28",
        b"[" + valid + b"]",
        b'"a string"',
        b"12345",
        b"null",
        deep,
        b'{"a": "' + b"x" * (2 << 20) + b'"}',
        b'{"a": 123456789012345678901234567890}',
        *(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))) for _ in range(8)),
    ]


def _paths(value: Any, path: tuple[Any, ...] = (), depth: int = 0) -> Iterator[tuple[Any, ...]]:
    if depth >= 3:
        return
    if isinstance(value, dict):
        for key, member in value.items():
            yield (*path, key)
            yield from _paths(member, (*path, key), depth + 1)
    elif isinstance(value, list) and value:
        yield (*path, 0)
        yield from _paths(value[0], (*path, 0), depth + 1)


def _replaced(value: Any, path: tuple[Any, ...], new: Any, delete: bool) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        copy = dict(value)
        if delete and not rest:
            del copy[head]
        else:
            copy[head] = _replaced(value[head], rest, new, delete)
        return copy
    copy_list = list(value)
    if delete and not rest:
        del copy_list[head]
    else:
        copy_list[head] = _replaced(value[head], rest, new, delete)
    return copy_list


def mutants(template: dict[str, Any]) -> list[bytes]:
    """``template`` with each field (to three levels) given each wrong value, or removed."""
    found: list[bytes] = []
    for path in _paths(template):
        found.append(orjson.dumps(_replaced(template, path, None, delete=True)))
        found.extend(orjson.dumps(_replaced(template, path, v, False)) for v in WRONG_VALUES)
    return found


def duplicated_keys(template: dict[str, Any]) -> bytes:
    """``template`` with each top-level key written twice (the first time with a wrong value):
    JSON parsers keep the last, as bkmonitor's ``json.loads`` does."""
    first = b",".join(orjson.dumps(k) + b":" + orjson.dumps([None]) for k in template)
    return b"{" + first + b"," + orjson.dumps(template)[1:]
