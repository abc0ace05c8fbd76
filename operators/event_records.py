"""GSE event messages: type dispatch, ``check()`` and ``flat()`` as bkmonitor's event records.

One Kafka message is one JSON object. Its type is ``value[0].extra.type`` (GSE base alarms);
else a message with ``_value_`` is a custom string event (type 100, data id 1100000); else a
message with ``data_id`` 1100008 is a process event (type 101). bkmonitor knows the data id
from the Redis list it pulls from; alarmflow reads the topics directly, so it tells custom
events by their shape (the ``_value_`` list, or ``data_id`` 1100000) instead.

``flat()`` turns a message into flat records, dicts with bkmonitor's normalised keys:
``_time_`` (``YYYY-MM-DD HH:MM:SS`` UTC), ``_type_``, ``_bizid_``, ``_cloudid_``, ``_server_``,
``_host_``, ``_title_``, ``_extra_``, and for agent and process events ``_agent_id_``; process
records also carry ``dimensions``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from operators.rejects import Reason, Rejected

GSE_CUSTOM_EVENT_DATAID = 1100000
GSE_PROCESS_REPORT_DATAID = 1100008

AGENT, DISK_READONLY, DISK_FULL, COREFILE, PING, OOM = 2, 3, 6, 7, 8, 9
CUSTOM, PROCESS = 100, 101
WHITELIST = (AGENT, DISK_READONLY, DISK_FULL, COREFILE, PING, OOM, CUSTOM, PROCESS)
IGNORED_TYPES = (0, 1, 4, 5)
"""OS restart, clock sync, port and process alarms: bkmonitor leaves them out."""

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def parse_time(text: Any) -> int:
    """A ``YYYY-MM-DD HH:MM:SS`` UTC string as epoch seconds."""
    try:
        return int(datetime.strptime(str(text), TIME_FORMAT).replace(tzinfo=UTC).timestamp())
    except ValueError:
        raise Rejected(
            Reason.WRONG_TYPE, f"event time {text!r} is not 'YYYY-MM-DD HH:MM:SS'"
        ) from None


def format_time(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime(TIME_FORMAT)


def event_type(message: Mapping[str, Any]) -> int:
    """bkmonitor's type dispatch (see the module docstring for custom events)."""
    value = message.get("value")
    if isinstance(value, list) and value and isinstance(value[0], Mapping):
        extra = value[0].get("extra")
        if isinstance(extra, Mapping) and "type" in extra:
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
    if not isinstance(extra, Mapping):
        raise Rejected(Reason.WRONG_TYPE, "'value[0].extra' must be an object")
    when = message.get("utctime2") or alarm.get("event_time")
    if not when:
        raise Rejected(Reason.MISSING_FIELD, "a GSE alarm needs 'utctime2' or 'event_time'")
    parse_time(when)
    host = extra.get("host", "")
    agent = message.get("agent")
    if isinstance(agent, Mapping) and agent.get("type") == "bkmonitorbeat":
        host = message.get("ip", "")
    return {
        "_time_": str(when),
        "_type_": kind,
        "_bizid_": extra.get("bizid", 0),
        "_cloudid_": extra.get("cloudid", 0),
        "_server_": message.get("server", ""),
        "_host_": host,
        "_title_": alarm.get("event_title") or "",
        "_extra_": dict(extra),
    }, extra


def _agent(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    record, extra = _base(message, AGENT)
    hosts = extra.get("host")
    if not isinstance(hosts, list) or not all(isinstance(h, Mapping) for h in hosts):
        raise Rejected(Reason.WRONG_TYPE, "an agent event's 'extra.host' must be a list of hosts")
    return [
        {
            **record,
            "_bizid_": host.get("bizid", 0),
            "_cloudid_": host.get("cloudid", 0),
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
    return [{**record, "_host_": str(ip)} for ip in targets]


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
        "_time_": str(when),
        "_type_": CUSTOM,
        "_bizid_": message.get("_bizid_", 0),
        "_cloudid_": message.get("_cloudid_", 0),
        "_server_": message.get("_server_", ""),
        "_host_": message.get("_server_", ""),
        "_extra_": {},
    }
    return [{**record, "_title_": text} for text in texts]


def _process(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    entries = message.get("data")
    entries = entries if isinstance(entries, list) else []
    events = [e for e in entries if isinstance(e, Mapping) and e.get("event_name")]
    if not events:
        raise Rejected(Reason.MISSING_FIELD, "a process event needs a 'data' entry with a name")
    records = []
    for entry in events:
        dimension = entry.get("dimension")
        stamp = entry.get("timestamp")
        if not isinstance(dimension, Mapping):
            raise Rejected(Reason.WRONG_TYPE, "a process event's 'dimension' must be an object")
        if isinstance(stamp, bool) or not isinstance(stamp, int):
            raise Rejected(Reason.WRONG_TYPE, "a process event's 'timestamp' must be ms")
        ip, cloud = dimension.get("bk_target_ip", ""), dimension.get("bk_target_cloud_id", 0)
        event = entry.get("event")
        content = event.get("content", "") if isinstance(event, Mapping) else ""
        records.append(
            {
                "_time_": format_time(stamp // 1000),
                "_type_": PROCESS,
                "_bizid_": dimension.get("bk_biz_id", 0),
                "_cloudid_": cloud,
                "_server_": ip,
                "_host_": ip,
                "_title_": str(content),
                "_extra_": dict(entry),
                "_agent_id_": str(dimension.get("bk_agent_id") or f"{cloud}:{ip}"),
                "dimensions": {**dimension, "event_name": entry["event_name"]},
            }
        )
    return records


def flat_event(message: Mapping[str, Any]) -> tuple[int, list[dict[str, Any]]]:
    """The message's type and its flat records; none for an ignored type.

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
        return kind, _process(message)
    if kind in WHITELIST:
        return kind, [_base(message, kind)[0]]
    raise Rejected(Reason.WRONG_TYPE, f"event type {kind} is not one bkmonitor handles")
