"""The sample alerts: reproducible, and a mix of every kind of input."""

from __future__ import annotations

from collections import Counter

import orjson

from alarmflow.samples import BAD_MESSAGES, sample_messages

NOW = 1_800_000_000


def kinds(messages: list[bytes]) -> Counter[str]:
    seen: set[bytes] = set()
    counts: Counter[str] = Counter()
    for message in messages:
        if message in BAD_MESSAGES or message.startswith(b'{"plugin_id"'):
            counts["bad"] += 1
        elif message in seen:
            counts["duplicate"] += 1
        else:
            data = orjson.loads(message)
            if data["time"] < NOW - 86400:
                counts["expired"] += 1
            elif data["alert_name"] == "Nobody watches this":
                counts["unmatched"] += 1
            else:
                counts["valid"] += 1
        seen.add(message)
    return counts


def test_samples_are_reproducible():
    assert list(sample_messages(500, NOW, seed=3)) == list(sample_messages(500, NOW, seed=3))
    assert list(sample_messages(500, NOW, seed=3)) != list(sample_messages(500, NOW, seed=4))


def test_samples_hold_every_kind_of_input():
    counts = kinds(list(sample_messages(5000, NOW)))
    assert set(counts) == {"valid", "duplicate", "expired", "unmatched", "bad"}
    assert counts["valid"] > 4000
