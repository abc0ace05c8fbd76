"""bkmonitor's ``count_md5``: an order-independent digest of nested values.

Dicts hash as the sorted list of ``(str(key), digest(value))`` pairs; lists and tuples as
the md5 of Python's ``str()`` of their members' sorted digests; callables by name; anything
else as the md5 of ``str(value)``. Python ``str()`` semantics are part of the contract:
``0`` and ``"0"`` hash alike, ``None`` is ``"None"`` and ``1.0`` is ``"1.0"``.
"""

from __future__ import annotations

from hashlib import md5
from typing import Any


def _md5_text(text: str) -> str:
    return md5(text.encode("utf8")).hexdigest()


def count_md5(content: Any) -> str:
    """Digest ``content`` exactly as bkmonitor's ``bkmonitor.utils.common_utils.count_md5``."""
    if isinstance(content, dict):
        return count_md5([(str(key), count_md5(content[key])) for key in sorted(content)])
    if isinstance(content, list | tuple):
        return _md5_text(str(sorted(count_md5(member) for member in content)))
    if callable(content):
        return _md5_text(content.__name__)
    return _md5_text(str(content))
