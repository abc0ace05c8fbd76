"""What a flow left in Redis and in the dead-letter topic, as data and as a printed report.

``python -m alarmflow.report`` prints the per-key counts, one sample record, the signal
queue and the rejected counts by reason, using the same settings as the flows.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from dataclasses import dataclass

import orjson
import redis

from alarmflow.config import Settings, mask_url, settings_or_exit
from alarmflow.connections import preflight, reachable_or_exit, redis_client
from alarmflow.kafka_tools import read_all
from state.keys import REGISTRY, RedisType, prefix_pattern

# Fields that record when alarmflow handled a record, not what it was.
VOLATILE_FIELDS = ("access_time", "create_time")
# The same inside each level of an anomaly element ({"anomaly": {level: {...}}, "data": {...}}),
# whose data record carries its own access time.
VOLATILE_ANOMALY_FIELDS = ("anomaly_time",)
# Lists of ids whose data changed (printed as queues, not sampled as records).
SIGNAL_KINDS = ("DATA_SIGNAL_KEY", "ANOMALY_SIGNAL_KEY", "INCIDENT_SIGNAL_KEY")
NOT_DEAD_LETTER = "(not a dead-letter record)"
"""What the report counts a message of the dead-letter topic under when it is no dead-letter
record (another producer's, or not JSON)."""


def _normalise(entry: bytes) -> str:
    try:
        data = orjson.loads(entry)
    except orjson.JSONDecodeError:
        return entry.decode()
    if isinstance(data, dict):
        records = [data, data["data"]] if isinstance(data.get("data"), dict) else [data]
        for record in records:
            for name in VOLATILE_FIELDS:
                record.pop(name, None)
        anomaly = data.get("anomaly")
        for level in anomaly.values() if isinstance(anomaly, dict) else ():
            for name in VOLATILE_ANOMALY_FIELDS:
                if isinstance(level, dict):
                    level.pop(name, None)
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode()


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{[^}]*\}", template.removeprefix("{key_prefix}."))
    return re.compile("[^.]+".join(re.escape(part) for part in parts) + "$")


_PATTERNS = [(d.name, d.type, _pattern(d.template)) for d in REGISTRY]


def _kind(key: str, redis_type: str, prefix: str) -> str:
    """The registered key a key belongs to (by type and template shape), else ``?``."""
    rest = key[len(prefix) + 1 :]
    for name, registered_type, pattern in _PATTERNS:
        if registered_type == redis_type and pattern.match(rest):
            return name
    return "?"


@dataclass(frozen=True)
class Entry:
    """One key's type and content, comparable across runs: a list's entries sorted (so runs
    with different parallelism compare equal), a set's members, a sorted set's ``score member``
    pairs and a hash's ``field=value`` pairs sorted, a string's value, each
    JSON value without the fields that only say when alarmflow handled it."""

    kind: str
    content: tuple[str, ...] | str | None

    @property
    def size(self) -> int:
        return len(self.content) if isinstance(self.content, tuple) else 1


def _content(client: redis.Redis, key: bytes, kind: str) -> tuple[str, ...] | str | None:
    if kind == RedisType.LIST:
        return tuple(sorted(_normalise(v) for v in client.lrange(key, 0, -1)))
    if kind == RedisType.SET:
        return tuple(sorted(m.decode() for m in client.smembers(key)))
    if kind == RedisType.STRING:
        return _normalise(client.get(key) or b"")
    if kind == RedisType.ZSET:
        return tuple(
            sorted(f"{s:g} {m.decode()}" for m, s in client.zrange(key, 0, -1, withscores=True))
        )
    if kind == RedisType.HASH:
        return tuple(sorted(f"{f.decode()}={v.decode()}" for f, v in client.hgetall(key).items()))
    return None


def snapshot(client: redis.Redis, prefix: str) -> dict[str, Entry]:
    """Every key under ``prefix`` with its :class:`Entry`."""
    state: dict[str, Entry] = {}
    for raw_key in client.scan_iter(match=prefix_pattern(prefix), count=1000):
        kind = client.type(raw_key).decode()
        state[raw_key.decode()] = Entry(kind, _content(client, raw_key, kind))
    return state


def dlq_reason(message: bytes) -> str:
    """The reason a dead-letter record gives, or :data:`NOT_DEAD_LETTER` for a message that is
    no such record (not JSON, not an object, no reason)."""
    try:
        record = orjson.loads(message)
    except orjson.JSONDecodeError:
        return NOT_DEAD_LETTER
    reason = record.get("reason") if isinstance(record, dict) else None
    return reason if isinstance(reason, str) else NOT_DEAD_LETTER


def dlq_reasons(settings: Settings) -> Counter[str]:
    """How many messages of the dead-letter topic give each reason."""
    return Counter(map(dlq_reason, read_all(settings, settings.dlq_topic)))


def print_report(settings: Settings, out=sys.stdout) -> None:
    client = redis_client(settings.redis_url, settings)
    state = snapshot(client, settings.key_prefix)
    prefix = settings.key_prefix
    kinds = {key: _kind(key, entry.kind, prefix) for key, entry in state.items()}
    by_kind = Counter(kinds.values())
    lists = {key: entry.content for key, entry in state.items() if entry.kind == RedisType.LIST}
    print(f"Redis {mask_url(settings.redis_url)}, prefix {settings.key_prefix}", file=out)
    print(f"  keys by kind: {dict(sorted(by_kind.items()))}", file=out)
    for key, entries in sorted(lists.items()):
        print(f"  {len(entries):>7}  {key}", file=out)
    data_lists = [k for k in lists if kinds[k] not in SIGNAL_KINDS]
    if data_lists:
        sample = orjson.loads(client.lindex(sorted(data_lists)[0], 0))
        print(f"  sample record from {sorted(data_lists)[0]}:", file=out)
        print(
            "    "
            + orjson.dumps(sample, option=orjson.OPT_INDENT_2).decode().replace("\n", "\n    "),
            file=out,
        )
    signal_lists = [k for k in lists if kinds[k] in SIGNAL_KINDS]
    for key in signal_lists:
        print(f"  signal queue {key}: {[v.decode() for v in client.lrange(key, 0, -1)]}", file=out)
    service = redis_client(settings.redis_service_url, settings)
    service_kinds = Counter(
        _kind(key, entry.kind, prefix) for key, entry in snapshot(service, prefix).items()
    )
    if service_kinds:
        print(f"Redis {mask_url(settings.redis_service_url)} (service db)", file=out)
        print(f"  keys by kind: {dict(sorted(service_kinds.items()))}", file=out)
    reasons = dlq_reasons(settings)
    print(
        f"Dead-letter topic {settings.dlq_topic}: {sum(reasons.values())} messages "
        f"{dict(sorted(reasons.items()))}",
        file=out,
    )


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(prog="python -m alarmflow.report", description=__doc__).parse_args(argv)
    settings = settings_or_exit()
    reachable_or_exit("alarmflow.report", lambda: preflight(settings))
    print_report(settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
