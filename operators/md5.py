"""bkmonitor's ``count_md5``: an order-independent digest of nested values.

Dicts hash as the sorted list of ``(str(key), digest(value))`` pairs; lists and tuples as
the md5 of Python's ``str()`` of their members' sorted digests; callables by name; anything
else as the md5 of ``str(value)``. Python ``str()`` semantics are part of the contract:
``0`` and ``"0"`` hash alike, ``None`` is ``"None"`` and ``1.0`` is ``"1.0"``.

Digests are bkmonitor's exactly; the work is cheaper: plain scalars skip the type tests,
``str()`` of a list of hex digests is joined directly (a hex digest needs no quoting), and
the digests of short texts, which repeat from alert to alert (plugin, status, business,
target type), are remembered in a small bounded table. A caller that knows a value is new each
time (an event id, a time) digests it with :func:`fresh_md5`, which leaves the table alone, and
joins digests with :func:`digests_md5`; a list of plain values that recurs as a whole is
digested once by :func:`recurring_md5`.
"""

from __future__ import annotations

try:
    from _md5 import md5  # CPython's own MD5: half the cost of OpenSSL's for short texts
except ImportError:  # an interpreter without it
    from hashlib import md5
from typing import Any

from operators.memo import exact_key, remember

_PLAIN = frozenset({int, float, bool, type(None)})
_MEMO_TEXT_MAX = 96
_MEMO_SIZE = 8192
_memo: dict[str, str] = {}


def _md5_text(text: str) -> str:
    if len(text) > _MEMO_TEXT_MAX:
        return md5(text.encode("utf8")).hexdigest()
    digest = _memo.get(text)
    if digest is None:
        digest = remember(_memo, text, md5(text.encode("utf8")).hexdigest(), _MEMO_SIZE)
    return digest


def fresh_md5(value: str | int | float | bool | None) -> str:
    """``count_md5`` of a plain value that will not recur, without remembering it."""
    return md5((value if type(value) is str else str(value)).encode("utf8")).hexdigest()


def digests_md5(digests: list[str]) -> str:
    """The md5 of ``str(sorted(digests))`` for a list of hex digests: ``count_md5`` of a
    list whose members' digests these are (sorts ``digests`` in place)."""
    if not digests:
        return _md5_text("[]")
    digests.sort()
    return _md5_text("['" + "', '".join(digests) + "']")


def count_md5(content: Any) -> str:
    """Digest ``content`` exactly as bkmonitor's ``bkmonitor.utils.common_utils.count_md5``."""
    kind = type(content)
    if kind is str:
        return _md5_text(content)
    if kind in _PLAIN:
        return _md5_text(str(content))
    if isinstance(content, dict):
        return digests_md5(
            [
                digests_md5([_md5_text(str(key)), _md5_text(count_md5(content[key]))])
                for key in sorted(content)
            ]
        )
    if isinstance(content, list | tuple):
        memo = _memo
        return digests_md5([(type(m) is str and memo.get(m)) or count_md5(m) for m in content])
    if callable(content):
        return _md5_text(content.__name__)
    return _md5_text(str(content))


_LISTS_KEPT = 8192
_lists: dict[tuple, str] = {}


def recurring_md5(values: list[Any]) -> str:
    """``count_md5(values)`` for a list that recurs (an alert's dedupe values), remembered in
    a small bounded table by its values and their types when all are strings, integers,
    booleans or None."""
    key = exact_key(values)
    if key is None:
        return count_md5(values)
    digest = _lists.get(key)
    if digest is None:
        digest = remember(_lists, key, count_md5(values), _LISTS_KEPT)
    return digest
