"""Sample events: reproducible, every type, and the bad ones are rejected."""

from __future__ import annotations

from collections import Counter

import orjson

from alarmflow.event_samples import by_host, sample_events
from operators.event_records import flat_event
from operators.rejects import Rejected


def kinds(messages: list[bytes]) -> Counter:
    seen: Counter = Counter()
    for message in messages:
        try:
            seen[flat_event(orjson.loads(message))[0]] += 1
        except (orjson.JSONDecodeError, Rejected):
            seen["bad"] += 1
    return seen


def test_samples_are_reproducible_and_cover_every_type():
    first = list(sample_events(2000, 1_800_000_000))
    assert first == list(sample_events(2000, 1_800_000_000))
    seen = kinds(first)
    assert set(seen) == {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 100, 101, "bad"}
    assert 0 < seen["bad"] < 100


def test_messages_are_keyed_by_their_reporting_host():
    process = {"data_id": 1100008, "data": [{"dimension": {"bk_target_ip": "10.0.0.6"}}]}
    custom = {"_server_": "10.0.0.5", "_value_": ["x"]}
    gse = {"server": "10.0.0.4", "value": []}
    keys = [by_host(orjson.dumps(m)) for m in (process, custom, gse)]
    assert keys == [b"10.0.0.6", b"10.0.0.5", b"10.0.0.4"]
    assert by_host(b"{not json") == by_host(b"[1]") == b""
