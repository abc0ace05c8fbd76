"""The converge dimension (``processor.get_dimension``) and the business dimension
(``dimension.get_sub_converge_label_info``).

bkmonitor tries to shorten lists of four or more values with ``md5`` of the list, which raises
``TypeError``; alarmflow joins every list in full with ``,`` and relies on the sha1 to keep the
dimension short (always 46 characters).
"""

from __future__ import annotations

import hashlib
from typing import Any

from operators.converge.config import ConvergeConfig

BIZ_FIELDS = ("bk_biz_id", "signal", "notice_way", "notice_receiver", "alert_level")


def _value(value: Any, context: dict[str, Any], dim: str) -> str:
    value = context.get(dim) if value == "self" else value
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return "" if value is None else str(value)


def dimension_text(config: ConvergeConfig, context: dict[str, Any]) -> str:
    """``"#{func}|dim:val..."`` over the conditions sorted by name, ``self`` substituted."""
    parts = [f"#{config.func}"]
    for dim, values in config.conditions:
        parts.extend(f"|{dim}:{_value(v, context, dim)}" for v in values)
    return "".join(parts)


def dimension(config: ConvergeConfig, context: dict[str, Any]) -> str:
    """``"!sha1#" + sha1(dimension_text)``: the converge's unique name."""
    text = dimension_text(config, context)
    return "!sha1#" + hashlib.sha1(text.encode()).hexdigest()


def biz_dimension(context: dict[str, Any]) -> str:
    """The second-level key ``{biz}.{signal}.{way}.{receiver}.{level}`` (lists joined by ``_``)."""
    return ".".join(str(context.get(name, "")).replace(",", "_") for name in BIZ_FIELDS)
