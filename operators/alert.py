"""Alert cleaning, following bkmonitor's ``Event.clean()`` (``alarm_backends/core/alert/event.py``).

:func:`clean_alert` validates a decoded message and returns the cleaned event as bkmonitor
would store it, plus ``dedupe_md5``, ``id`` and ``access_time``. Invalid input raises
:class:`~operators.rejects.Rejected` with the field and the reason.

The usual message (plain JSON types, every field well typed) is cleaned by the C twin of this
module's Python (``operators/_native.c``) in less than half its time (``python -m
bench.alert_stages`` compares the two); any other message, and every rejection, goes through the
Python here, which is the reference the C is tested against.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from operators import _native
from operators.md5 import count_md5
from operators.memo import exact_key, remember
from operators.rejects import Reason, Rejected

EXPIRE_SECONDS = 24 * 60 * 60
DEFAULT_SEVERITY = 3
DEFAULT_DEDUPE_FIELDS = ("alert_name", "strategy_id", "target_type", "target", "bk_biz_id")
BUILTIN_TARGET_TYPES = ("HOST", "TOPO", "SERVICE")
FINAL_STATUSES = ("RECOVERED", "CLOSED")
ABNORMAL = "ABNORMAL"
DATA_TYPES = ("time_series", "log")
# Target types whose target is not part of the alert's identity.
TARGETLESS_TYPES = frozenset({"K8S-POD", "K8S-NODE", "K8S-SERVICE", "K8S-WORKLOAD", "APM-SERVICE"})


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_id(value: Any) -> bool:
    return _is_int(value) or (isinstance(value, str) and value.strip().lstrip("-").isdigit())


def _require(data: Mapping[str, Any], field: str, ok: bool, expected: str) -> None:
    if field not in data:
        raise Rejected(Reason.MISSING_FIELD, f"required field '{field}' is missing")
    if not ok:
        raise Rejected(
            Reason.WRONG_TYPE, f"field '{field}' must be {expected}, got {data[field]!r:.80}"
        )


def _check_optional(data: Mapping[str, Any], field: str, ok: bool, expected: str) -> None:
    if field in data and not ok:
        raise Rejected(
            Reason.WRONG_TYPE, f"field '{field}' must be {expected}, got {data[field]!r:.80}"
        )


def _plainly_valid(data: Mapping[str, Any]) -> bool:
    """A quick test that accepts only what :func:`validate_alert` accepts (the usual alert:
    plain JSON types); anything else goes through the full checks, which name the problem."""
    get = data.get
    plugin_id, alert_name, tags = get("plugin_id"), get("alert_name"), get("tags", [])
    if (
        type(get("event_id")) not in (str, int)
        or type(plugin_id) is not str
        or not plugin_id
        or type(alert_name) is not str
        or not alert_name
        or type(get("bk_biz_id")) is not int
        or type(get("strategy_id", 0)) is not int
        or type(get("status", "")) is not str
        or type(get("target_type", "")) is not str
        or type(get("metric", "")) not in (str, list)
        or type(tags) is not list
    ):
        return False
    time, ingest = get("time"), get("bk_ingest_time")
    if time is None:
        if type(ingest) not in (int, float):
            return False
    elif type(time) not in (int, float) or (
        ingest is not None and type(ingest) not in (int, float)
    ):
        return False
    dedupe_keys = get("dedupe_keys")
    if type(dedupe_keys) is list and not all(type(k) is str for k in dedupe_keys):
        return False
    return all(type(tag) is dict and "key" in tag and "value" in tag for tag in tags)


def validate_alert(data: Mapping[str, Any]) -> None:
    """Raise :class:`Rejected` unless ``data`` (None fields removed) can be cleaned."""
    if not _plainly_valid(data):
        check_alert_fields(data)


def check_alert_fields(data: Mapping[str, Any]) -> None:
    """Every check of :func:`validate_alert`, in order; the first problem is raised."""
    _require(
        data,
        "event_id",
        isinstance(data.get("event_id"), str) or _is_int(data.get("event_id")),
        "a string or an integer",
    )
    for field in ("plugin_id", "alert_name"):
        value = data.get(field)
        _require(data, field, isinstance(value, str) and bool(value), "a non-empty string")
    _require(data, "bk_biz_id", _is_id(data.get("bk_biz_id")), "an integer business id")
    _check_optional(data, "strategy_id", _is_id(data.get("strategy_id")), "an integer")
    for field in ("status", "target_type"):
        _check_optional(data, field, isinstance(data.get(field), str), "a string")
    for field in ("time", "bk_ingest_time"):
        _check_optional(data, field, _is_number(data.get(field)), "epoch seconds (a number)")
    if "time" not in data and "bk_ingest_time" not in data:
        raise Rejected(Reason.MISSING_FIELD, "neither 'time' nor 'bk_ingest_time' is present")
    _check_optional(
        data, "metric", isinstance(data.get("metric"), str | list), "a string or a list"
    )
    tags = data.get("tags", [])
    if not isinstance(tags, list) or not all(
        isinstance(tag, dict) and "key" in tag and "value" in tag for tag in tags
    ):
        raise Rejected(Reason.WRONG_TYPE, "field 'tags' must be a list of {key, value} objects")
    dedupe_keys = data.get("dedupe_keys")
    if isinstance(dedupe_keys, list) and not all(isinstance(k, str) for k in dedupe_keys):
        raise Rejected(Reason.WRONG_TYPE, "field 'dedupe_keys' must list strings")


def _safe_json_text(value: Any) -> bool:
    """A string ``json.dumps`` writes as itself in quotes (printable ASCII, no escapes)."""
    return (
        type(value) is str
        and value.isascii()
        and value.isprintable()
        and '"' not in value
        and "\\" not in value
    )


def _json_dumps(value: Any) -> str:
    """``json.dumps(value)``; a flat object of plain strings is written directly."""
    if type(value) is dict and all(
        _safe_json_text(k) and _safe_json_text(v) for k, v in value.items()
    ):
        return "{" + ", ".join(f'"{k}": "{v}"' for k, v in value.items()) + "}"
    return json.dumps(value)


_OBJECTS_KEPT = 4096
_objects: dict[tuple, str] = {}


def _object_json(value: dict[str, Any]) -> str:
    """``json.dumps`` of a tag's object value. Such objects recur from alert to alert (labels
    of a host or a pod): a flat one of strings, integers, booleans and nulls is written once and
    remembered, by its items and their types, in a small bounded table."""
    key = exact_key(value.values())
    if key is None:
        return _json_dumps(value)
    key = (*value, *key)
    text = _objects.get(key)
    if text is None:
        text = remember(_objects, key, _json_dumps(value), _OBJECTS_KEPT)
    return text


def _clean_tag_value(value: Any) -> Any:
    if type(value) is dict:
        return _object_json(value)
    if isinstance(value, dict):
        return _json_dumps(value)
    if isinstance(value, list | tuple):
        return [_json_dumps(v) if isinstance(v, dict | list) else v for v in value]
    return value


def _clean_tags(tags: list[dict[str, Any]]) -> list[dict[str, Any]]:
    cleaned = []
    for tag in tags:
        key, value = tag["key"], tag["value"]
        item = {
            "key": key if type(key) is str else str(key),
            "value": value if type(value) is str else _clean_tag_value(value),
        }
        if "display_key" in tag:
            item["display_key"] = tag["display_key"]
        if "display_value" in tag:
            item["display_value"] = tag["display_value"]
        cleaned.append(item)
    return cleaned


def _clean_target_type(value: str) -> str:
    if not value:
        return ""
    return value.upper() if value.upper() in BUILTIN_TARGET_TYPES else value


def _clean_severity(value: Any) -> int:
    if type(value) is int:
        return max(1, min(3, value))
    try:
        return max(1, min(3, int(value)))
    except (TypeError, ValueError):
        return DEFAULT_SEVERITY


_DEDUPE_KEYS_KEPT = 1024
_dedupe_keys: dict[tuple[bool, tuple[str, ...]], list[str]] = {}


def _clean_dedupe_keys(data: Mapping[str, Any]) -> list[str]:
    """The default dedupe fields (``alert_name`` or ``strategy_id`` left out) plus the
    message's own; made once per shape of message, remembered in a small bounded table."""
    with_strategy = bool(data.get("strategy_id"))
    extra = data.get("dedupe_keys", [])
    extra = tuple(extra) if isinstance(extra, list) else ()
    keys = _dedupe_keys.get((with_strategy, extra))
    if keys is None:
        dropped = "alert_name" if with_strategy else "strategy_id"
        keys = [key for key in DEFAULT_DEDUPE_FIELDS if key != dropped]
        keys.extend(key for key in extra if key not in keys)
        remember(_dedupe_keys, (with_strategy, extra), keys, _DEDUPE_KEYS_KEPT)
    return list(keys)


def _dedupe_values(event: Mapping[str, Any]) -> list[Any]:
    targetless = event["target_type"] in TARGETLESS_TYPES
    values = []
    for key in event["dedupe_keys"]:
        if targetless and key == "target":
            values.append(None)
        elif targetless and key == "target_type":
            values.append("")
        elif key.startswith("tags."):
            name = key[len("tags.") :]
            values.append(next((t["value"] for t in event["tags"] if t["key"] == name), None))
        else:
            values.append(event.get(key))
    return values


def clean_alert(raw: Mapping[str, Any], now: float) -> dict[str, Any]:
    """The cleaned alert for a decoded message, or :class:`Rejected`."""
    event = _native.clean_alert(raw, now, _clean_tag_value)
    return event if event is not None else clean_alert_in_python(raw, now)


def clean_alert_in_python(raw: Mapping[str, Any], now: float) -> dict[str, Any]:
    """:func:`clean_alert` in Python: the path of a message the C twin leaves alone."""
    data = {key: value for key, value in raw.items() if value is not None}
    validate_alert(data)
    get = data.get
    metric = get("metric")
    data_type = str(get("data_type", "")).lower()
    status = get("status", "").upper()
    data.update(
        create_time=int(now),
        target_type=_clean_target_type(get("target_type", "")),
        target=get("target"),
        metric=[metric] if isinstance(metric, str) else (metric or []),
        data_type=data_type if data_type in DATA_TYPES else "event",
        dedupe_keys=_clean_dedupe_keys(data),
        status=status if status in FINAL_STATUSES else ABNORMAL,
        severity=_clean_severity(get("severity")),
        tags=_clean_tags(get("tags", [])),
        time=data["time"] if "time" in data else data["bk_ingest_time"],
    )
    data["id"] = count_md5([data["plugin_id"], data["event_id"], data["status"], data["time"]])
    data["dedupe_md5"] = count_md5(_dedupe_values(data))
    data["access_time"] = now
    return data


def _access_time(event: Mapping[str, Any]) -> Any:
    if "extra_info" not in event:  # the usual alert: no exception raised and caught
        return event["time"]
    try:
        origin = event["extra_info"]["origin_alarm"]["data"]["access_time"]
    except (KeyError, TypeError):
        return event["time"]
    return origin if _is_number(origin) else event["time"]


def is_expired(event: Mapping[str, Any], now: float) -> bool:
    """bkmonitor's ``Event.is_expired()``: its access time is more than a day before ``now``."""
    return _access_time(event) < now - EXPIRE_SECONDS
