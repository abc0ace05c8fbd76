"""bkmonitor's ``count_md5``: an order-independent digest of nested values.

Dicts hash as the sorted list of ``(str(key), digest(value))`` pairs; lists and tuples as
the md5 of Python's ``str()`` of their members' sorted digests; callables by name; anything
else as the md5 of ``str(value)``. Python ``str()`` semantics are part of the contract:
``0`` and ``"0"`` hash alike, ``None`` is ``"None"`` and ``1.0`` is ``"1.0"``.

Values made of the types JSON decodes to (str, int, float, bool, None, list, tuple, dict) are
digested by the C twin in ``operators/_native.c``; any other value by the Python here.
"""

from __future__ import annotations

try:
    from _md5 import md5  # CPython's own MD5: half the cost of OpenSSL's for short texts
except ImportError:  # an interpreter without it
    from hashlib import md5
from typing import Any

from operators import _native


def _md5_text(text: str) -> str:
    return md5(text.encode("utf8")).hexdigest()


def _digests_md5(digests: list[str]) -> str:
    """The md5 of ``str(sorted(digests))`` for a list of hex digests."""
    digests.sort()
    return _md5_text("['" + "', '".join(digests) + "']" if digests else "[]")


def count_md5(content: Any) -> str:
    """Digest ``content`` exactly as bkmonitor's ``bkmonitor.utils.common_utils.count_md5``."""
    digest = _native.count_md5(content)
    if digest is not None:
        return digest
    if isinstance(content, dict):
        return _digests_md5(
            [
                _digests_md5([_md5_text(str(key)), _md5_text(count_md5(content[key]))])
                for key in sorted(content)
            ]
        )
    if isinstance(content, list | tuple):
        return _digests_md5([count_md5(member) for member in content])
    if callable(content):
        return _md5_text(content.__name__)
    return _md5_text(str(content))
