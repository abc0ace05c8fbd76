"""GSE event messages: type dispatch, ``check()`` and ``flat()`` as bkmonitor's event records.

One Kafka message is one JSON object. Its type is ``value[0].extra.type`` (GSE base alarms);
else a message with ``_value_`` is a custom string event (type 100, data id 1100000); else a
message with ``data_id`` 1100008 is a process event (type 101). bkmonitor knows the data id
from the Redis list it pulls from; alarmflow reads the topics directly, so it tells custom
events by their shape (the ``_value_`` list, or ``data_id`` 1100000) instead.

``flat()`` turns a message into flat records, dicts with bkmonitor's normalised keys:
``_time_`` (as the message gives it; :func:`parse_time` reads it as bkmonitor's
``arrow.get``), ``_type_``, ``_bizid_``, ``_cloudid_``, ``_server_``, ``_host_``, ``_title_``,
``_extra_``, and for agent and process events ``_agent_id_``; process records also carry
``dimensions`` (the process dimensions, which ``full()`` adds the host's to).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from operators.bounds import EPOCH_2000, within_64_bits
from operators.event_texts import process_title
from operators.memo import remember
from operators.rejects import Reason, Rejected, preview

GSE_CUSTOM_EVENT_DATAID = 1100000
GSE_PROCESS_REPORT_DATAID = 1100008

AGENT, DISK_READONLY, DISK_FULL, COREFILE, PING, OOM = 2, 3, 6, 7, 8, 9
CUSTOM, PROCESS = 100, 101
WHITELIST = (AGENT, DISK_READONLY, DISK_FULL, COREFILE, PING, OOM, CUSTOM, PROCESS)
IGNORED_TYPES = (0, 1, 4, 5)
"""OS restart, clock sync, port and process alarms: bkmonitor leaves them out."""

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
MAX_DATE = 253_402_300_799
"""9999-12-31T23:59:59Z, the last second a date can hold."""
_ISO = re.compile(
    r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?"
    r"(?:Z|([+-])(\d{2}):?(\d{2}))?)?)?)?"
)


def is_object(value: Any) -> bool:
    """``isinstance(value, Mapping)``: a decoded JSON object (a ``dict``) and an absent field
    (``None``) are told without the ABC check, which costs ten times as much (a message's
    fields are checked several times)."""
    return type(value) is dict or (value is not None and isinstance(value, Mapping))


def _out_of_range(value: Any) -> Rejected:
    return Rejected(Reason.OUT_OF_RANGE, f"event time {preview(value)} is not a date")


def _from_epoch(seconds: float, value: Any) -> int:
    if not math.isfinite(seconds):
        raise _out_of_range(value)
    try:
        return int(datetime.fromtimestamp(seconds, UTC).timestamp() // 1)
    except (OverflowError, OSError, ValueError):
        pass
    if EPOCH_2000 <= seconds / 1000 <= MAX_DATE:
        raise Rejected(
            Reason.MILLISECOND_TIME,
            f"event time {preview(value)} looks like epoch milliseconds; expected seconds",
        )
    raise _out_of_range(value)


_TIMES_KEPT = 4096
"""How many event-time strings :func:`parse_time` and epochs :func:`format_time` remember: a
stream's times recur (one per second, several records each) and each is read several times."""
_parsed: dict[str, int] = {}
_formatted: dict[int, str] = {}


def parse_time(value: Any) -> int:
    """An event time as epoch seconds, as bkmonitor's ``arrow.get(value).timestamp`` (arrow
    0.6) reads it: a number, or a string that is one, is epoch seconds; any other string is
    ISO 8601 (``YYYY[-MM[-DD[( |T)HH:mm[:ss[.ffffff]]]]]``, with an optional ``±HH:MM``
    offset, UTC without one; fractions are cut to whole seconds). Anything else is
    :class:`Rejected`. A string's time is remembered (a string that fails is not)."""
    if type(value) is str:
        moment = _parsed.get(value)
        if moment is None:
            moment = remember(_parsed, value, _parse_text(value), _TIMES_KEPT)
        return moment
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise Rejected(Reason.WRONG_TYPE, f"event time {preview(value)} is not a time")
    if isinstance(value, int | float):
        return _from_epoch(float(value), value)
    return _parse_text(value)


def _parse_text(value: str) -> int:
    text = value.strip()
    try:
        return _from_epoch(float(text), value)
    except ValueError:
        pass
    match = _ISO.fullmatch(text)
    if match is None:
        raise Rejected(Reason.WRONG_TYPE, f"event time {preview(value)} is not ISO 8601")
    year, month, day, hour, minute, second, fraction, sign, off_h, off_m = match.groups()
    try:
        zone = UTC
        if sign:
            offset = timedelta(hours=int(off_h), minutes=int(off_m))
            zone = timezone(-offset if sign == "-" else offset)
        moment = datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0")[:6].ljust(6, "0")),
            tzinfo=zone,
        )
    except ValueError:
        raise _out_of_range(value) from None
    return int(moment.timestamp() // 1)


def format_time(epoch: int) -> str:
    """``epoch`` as bkmonitor writes times (UTC, :data:`TIME_FORMAT`), remembered."""
    text = _formatted.get(epoch)
    if text is None:
        text = datetime.fromtimestamp(epoch, UTC).strftime(TIME_FORMAT)
        remember(_formatted, epoch, text, _TIMES_KEPT)
    return text


def event_type(message: Mapping[str, Any]) -> int:
    """bkmonitor's type dispatch (see the module docstring for custom events)."""
    value = message.get("value")
    if isinstance(value, list) and value and is_object(value[0]):
        extra = value[0].get("extra")
        if is_object(extra) and "type" in extra:
            kind = extra["type"]
            if isinstance(kind, bool) or not str(kind).isdigit():
                raise Rejected(Reason.WRONG_TYPE, f"'extra.type' must be an integer, got {kind!r}")
            return int(kind)
    if "_value_" in message or message.get("data_id") == GSE_CUSTOM_EVENT_DATAID:
        return CUSTOM
    if message.get("data_id") == GSE_PROCESS_REPORT_DATAID:
        return PROCESS
    raise Rejected(
        Reason.MISSING_FIELD,
        "not an event: no 'value[0].extra.type', no custom '_value_' and no process data id",
    )


def _base(message: Mapping[str, Any], kind: int) -> tuple[dict[str, Any], Mapping[str, Any]]:
    """``check()`` of a GSE base alarm, and the fields every record of it shares."""
    value = message["value"]
    if len(value) != 1:
        raise Rejected(
            Reason.WRONG_TYPE, f"a GSE alarm needs exactly one 'value' entry, got {len(value)}"
        )
    alarm, extra = value[0], value[0]["extra"]
    if not is_object(extra):
        raise Rejected(Reason.WRONG_TYPE, "'value[0].extra' must be an object")
    when = message.get("utctime2") or alarm.get("event_time")
    if not when:
        raise Rejected(Reason.MISSING_FIELD, "a GSE alarm needs 'utctime2' or 'event_time'")
    parse_time(when)
    title = alarm.get("event_title") or ""
    if not isinstance(title, str):
        raise Rejected(Reason.WRONG_TYPE, f"'event_title' must be a string, got {preview(title)}")
    host = extra.get("host", "")
    agent = message.get("agent")
    if is_object(agent) and agent.get("type") == "bkmonitorbeat":
        host = message.get("ip", "")
    return {
        "_time_": when,
        "_type_": kind,
        "_bizid_": extra.get("bizid", 0),
        "_cloudid_": _whole(extra.get("cloudid") or 0, "'extra.cloudid'"),
        "_server_": message.get("server", ""),
        "_host_": host,
        "_title_": title,
        "_extra_": dict(extra),
    }, extra


def _agent(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    record, extra = _base(message, AGENT)
    hosts = extra.get("host")
    if not isinstance(hosts, list) or not all(is_object(h) for h in hosts):
        raise Rejected(Reason.WRONG_TYPE, "an agent event's 'extra.host' must be a list of hosts")
    return [
        {
            **record,
            "_bizid_": host.get("bizid", 0),
            "_cloudid_": _whole(host.get("cloudid") or 0, "a host's 'cloudid'"),
            "_host_": host.get("ip", ""),
            "_agent_id_": str(host.get("agent_id") or ""),
        }
        for host in hosts
    ]


def _ping(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    record, extra = _base(message, PING)
    targets = extra.get("iplist")
    if not isinstance(targets, list):
        raise Rejected(Reason.WRONG_TYPE, "a ping event's 'extra.iplist' must be a list of IPs")
    server = extra.get("host", "")
    return [{**record, "_server_": server, "_host_": str(ip)} for ip in targets]


def _custom(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    values = message.get("_value_")
    texts = [v for v in values if isinstance(v, str)] if isinstance(values, list) else []
    if not texts:
        raise Rejected(Reason.MISSING_FIELD, "a custom event needs a string in '_value_'")
    when = message.get("_utctime_")
    if not when:
        raise Rejected(Reason.MISSING_FIELD, "a custom event needs '_utctime_'")
    parse_time(when)
    record = {
        "_time_": when,
        "_type_": CUSTOM,
        "_bizid_": message.get("_bizid_", 0),
        "_cloudid_": _whole(message.get("_cloudid_") or 0, "'_cloudid_'"),
        "_server_": message.get("_server_", ""),
        "_host_": message.get("_server_", ""),
        "_extra_": {},
    }
    return [{**record, "_title_": text} for text in texts]


def _whole(value: Any, what: str) -> int:
    """``int(value)`` as bkmonitor takes it, for a number or a numeric string."""
    if type(value) is int:  # as decoded, most often: itself
        return value
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise Rejected(Reason.WRONG_TYPE, f"{what} must be a number, got {preview(value)}")
    try:
        whole = int(value)
    except (ValueError, OverflowError):
        raise Rejected(
            Reason.WRONG_TYPE, f"{what} must be a number, got {preview(value)}"
        ) from None
    if not within_64_bits(whole):
        raise Rejected(Reason.OUT_OF_RANGE, f"{what} {preview(value)} is wider than 64 bits")
    return whole


def _process(message: Mapping[str, Any], language: str) -> list[dict[str, Any]]:
    """``GseProcessEventRecord.flat()``: one record per ``data`` entry that has an event name
    (bkmonitor's ``check()`` needs one; it would also flat the entries without, which its
    filters cannot read: they are left out here)."""
    entries = message.get("data")
    entries = entries if isinstance(entries, list) else []
    events = [e for e in entries if is_object(e) and e.get("event_name")]
    if not events:
        raise Rejected(Reason.MISSING_FIELD, "a process event needs a 'data' entry with a name")
    records = []
    for entry in events:
        dimension = entry.get("dimension", {})
        if not is_object(dimension):
            raise Rejected(Reason.WRONG_TYPE, "a process event's 'dimension' must be an object")
        seconds = _whole(entry.get("timestamp", 0), "a process event's 'timestamp'") // 1000
        _from_epoch(seconds, entry.get("timestamp"))
        ip = dimension.get("bk_target_ip")
        dimensions = {**dimension, "event_name": entry["event_name"]}
        event = entry.get("event", {})
        content = event.get("content") if is_object(event) else None
        records.append(
            {
                "_time_": format_time(seconds),
                "_type_": PROCESS,
                "_bizid_": dimension.get("_bizid_") or 0,
                "_cloudid_": _whole(
                    dimension.get("bk_target_cloud_id") or 0, "'bk_target_cloud_id'"
                ),
                "_server_": ip,
                "_host_": ip,
                "_agent_id_": dimension.get("bk_agent_id", ""),
                "_title_": process_title(language, entry["event_name"], content),
                "_extra_": {"value": {**entry, "dimension": dimensions}},
                "dimensions": dimensions,
            }
        )
    return records


def flat_event(
    message: Mapping[str, Any], language: str = "zh"
) -> tuple[int, list[dict[str, Any]]]:
    """The message's type and its flat records; none for an ignored type. ``language`` is
    that of the process events' titles (:mod:`operators.event_texts`).

    Raises :class:`Rejected` for a message that is not a well-formed event of a known type.
    """
    kind = event_type(message)
    if kind in IGNORED_TYPES:
        return kind, []
    if kind == AGENT:
        return kind, _agent(message)
    if kind == PING:
        return kind, _ping(message)
    if kind == CUSTOM:
        return kind, _custom(message)
    if kind == PROCESS:
        return kind, _process(message, language)
    if kind in WHITELIST:
        record, extra = _base(message, kind)
        ro = extra.get("ro") if kind == DISK_READONLY else None
        if ro and not isinstance(ro, list):
            # filter_dimensions, clean_dimensions and the title read it as a list of entries
            what = f"a disk-readonly event's 'extra.ro' must be a list, got {preview(ro)}"
            raise Rejected(Reason.WRONG_TYPE, what)
        return kind, [record]
    raise Rejected(Reason.WRONG_TYPE, f"event type {kind} is not one bkmonitor handles")
