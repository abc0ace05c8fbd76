"""Sample GSE event messages: a realistic, reproducible mix for the demo, the benchmark and
the tests. Every event type, on the bundled hosts (``samples/hosts.json``), with some
unknown hosts, ignored types, expired events and malformed messages.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import orjson

from operators.event_records import format_time
from operators.json_bytes import json_bytes

KNOWN_HOSTS = tuple(range(1, 51))
BAD_MESSAGES: tuple[bytes, ...] = (
    b"{not json",
    b'{"hello": "no event here"}',
    b'{"server": "10.0.0.1", "value": [{"extra": {"type": 42}}]}',
    b'{"_value_": ["no time"], "_server_": "10.0.0.1"}',
)


def _ip(rng: random.Random) -> str:
    return f"10.0.0.{rng.choice(KNOWN_HOSTS)}" if rng.random() > 0.05 else "10.9.9.9"


def _gse(ip: str, when: str, kind: int, **extra: Any) -> dict[str, Any]:
    return {
        "server": ip,
        "utctime2": when,
        "value": [
            {
                "event_time": when,
                "event_title": "",
                "extra": {"type": kind, "bizid": 0, "cloudid": 0, "host": ip, **extra},
            }
        ],
    }


def _agent_host(rng: random.Random) -> dict[str, Any]:
    host = rng.choice(KNOWN_HOSTS)
    style = rng.random()
    if style < 0.4:
        return {"bizid": 0, "cloudid": 0, "ip": f"10.0.0.{host}"}
    if style < 0.7 or host % 2:
        return {"bizid": 0, "cloudid": 0, "agent_id": f"0:10.0.0.{host}"}
    return {"bizid": 0, "cloudid": 0, "agent_id": f"02{host:030d}"}


def _event(rng: random.Random, when: str, stamp: int) -> dict[str, Any]:
    ip = _ip(rng)
    roll = rng.random()
    if roll < 0.2:
        disk, fstype = rng.choice((("/data", "ext4"), ("/", "xfs"), ("/run", "tmpfs")))
        device = f"/dev/vd{rng.choice('abc')}1"
        return _gse(
            ip, when, 6, disk=disk, free=rng.randint(0, 9), file_system=device, fstype=fstype
        )
    if roll < 0.3:
        ro = [{"position": "/data", "fs": "/dev/vdb1", "type": rng.choice(("ext4", "iso9660"))}]
        return _gse(ip, when, 3, ro=ro)
    if roll < 0.4:
        exe = rng.choice(("nginx", "java", "redis-server"))
        return _gse(
            ip,
            when,
            7,
            corefile=f"/data/corefile/core_{exe}.{rng.randint(1, 99)}",
            executable=exe,
            executable_path=f"/usr/bin/{exe}",
            signal="SIGSEGV",
        )
    if roll < 0.5:
        unreachable = [_ip(rng) for _ in range(rng.randint(1, 2))]
        return _gse(ip, when, 8, iplist=unreachable)
    if roll < 0.6:
        process = rng.choice(("java", "mysqld"))
        return _gse(ip, when, 9, process=process, message=f"Out of memory: kill {process}")
    if roll < 0.7:
        hosts = [_agent_host(rng) for _ in range(rng.randint(1, 3))]
        return _gse(ip, when, 2, host=hosts)
    if roll < 0.82:
        text = rng.choice(("nginx down", "backup failed", "certificate expires soon"))
        return {
            "_bizid_": 0,
            "_cloudid_": 0,
            "_server_": ip,
            "_time_": when,
            "_utctime_": when,
            "_value_": [text],
        }
    if roll < 0.94:
        name = rng.choice(("nginx", "mysqld"))
        dimension = {
            "bk_target_ip": ip,
            "bk_target_cloud_id": "0",
            "process_name": name,
            "process_group_id": "web",
            "process_index": f"web:{name}",
        }
        event_name = rng.choice(("process_restart_success", "process_stop"))
        return {
            "data_id": 1100008,
            "data": [
                {
                    "dimension": dimension,
                    "event_name": event_name,
                    "event": {"content": f"{name}: {event_name}"},
                    "timestamp": stamp * 1000,
                }
            ],
        }
    return _gse(ip, when, rng.choice((0, 1, 4, 5)))


def sample_events(count: int, now: int, seed: int = 11) -> Iterator[bytes]:
    """``count`` messages: mostly valid events of every type, with ~3% expired (an hour old)
    and ~2% malformed. Valid events are 0-5 minutes old."""
    rng = random.Random(seed)
    for _ in range(count):
        roll = rng.random()
        if roll < 0.02:
            yield rng.choice(BAD_MESSAGES)
            continue
        stamp = now - (3600 if roll < 0.05 else rng.randint(0, 300))
        yield json_bytes(_event(rng, format_time(stamp), stamp))


def by_host(message: bytes) -> bytes:
    """A partition key that keeps one host's events in order: the reporting host's IP (GSE
    ``server``, a custom event's ``_server_``, a process event's target IP). Priority
    inhibition (``operators.priority``) compares a host's events with each other, so with
    this key its outcome does not depend on how the partitions interleave."""
    try:
        data = orjson.loads(message)
    except orjson.JSONDecodeError:
        return b""
    if not isinstance(data, dict):
        return b""
    entries = data.get("data")
    if isinstance(entries, list) and entries and isinstance(entries[0], dict):
        dimension = entries[0].get("dimension")
        return str(dimension.get("bk_target_ip") if isinstance(dimension, dict) else "").encode()
    return str(data.get("server") or data.get("_server_") or "").encode()
