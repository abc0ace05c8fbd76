"""Sample alerts in bkmonitor's event shape: a realistic, reproducible mix for the demo,
the benchmark and the tests (valid alerts, exact duplicates, expired, unmatched and bad).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from operators.json_bytes import json_bytes

HOSTS = [f"10.0.{i // 250}.{i % 250 + 1}" for i in range(500)]
VALID_KINDS = (
    ("CPU usage high", 2, {"cpu": "cpu-total"}),
    ("Disk full", 2, {"mount": "/data"}),
    ("Disk full", 2, {"mount": "/"}),
    ("Pod CrashLoopBackOff", 3, {"namespace": "prod-payments"}),
    ("Pod CrashLoopBackOff", 3, {"namespace": "dev-sandbox"}),
)
BAD_MESSAGES: tuple[bytes, ...] = (
    b"{not json",
    b'[{"event_id": "x"}]',
    b'{"plugin_id": "zabbix", "alert_name": "CPU usage high", "bk_biz_id": 2, "time": 1}',
    b'{"event_id": "e", "plugin_id": "zabbix", "alert_name": "x", "bk_biz_id": "two", "time": 1}',
)


def _alert(rng: random.Random, seq: int, now: int) -> dict[str, Any]:
    name, biz, tags = rng.choice(VALID_KINDS)
    host = rng.choice(HOSTS)
    alert: dict[str, Any] = {
        "event_id": f"evt-{seq}",
        "plugin_id": rng.choice(("zabbix", "prometheus", "rest_api")),
        "alert_name": name,
        "bk_biz_id": biz,
        "status": rng.choice(("abnormal", "ABNORMAL", "recovered")),
        "severity": rng.choice((1, 2, 3, "2", 7)),
        "target_type": "host" if biz == 2 else "K8S-POD",
        "target": host,
        "description": f"{name} on {host}",
        "metric": "system.cpu.usage" if name.startswith("CPU") else ["system.disk.in_use"],
        "tags": [{"key": key, "value": value} for key, value in tags.items()]
        + [{"key": "labels", "value": {"team": "sre", "tier": rng.choice(("1", "2"))}}],
        "time": now - rng.randint(0, 600),
    }
    if seq % 7 == 0:
        alert["strategy_id"] = 201
        alert["dedupe_keys"] = ["tags.cpu"]
    return alert


def sample_messages(count: int, now: int, seed: int = 7) -> Iterator[bytes]:
    """``count`` messages: mostly valid, with exact duplicates, expired, unmatched and bad ones."""
    rng = random.Random(seed)
    previous: bytes | None = None
    for seq in range(count):
        roll = rng.random()
        if previous is not None and roll < 0.05:
            yield previous
            continue
        if roll < 0.06:
            yield BAD_MESSAGES[seq % len(BAD_MESSAGES)]
            continue
        alert = _alert(rng, seq, now)
        if roll < 0.08:
            alert["time"] = now - 2 * 86400
        elif roll < 0.10:
            alert["alert_name"] = "Nobody watches this"
        previous = json_bytes(alert)
        yield previous
