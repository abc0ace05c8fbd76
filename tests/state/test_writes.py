"""What the alert flow writes for one cleaned alert."""

from __future__ import annotations

import orjson

from operators.routing import Target
from state.writes import alert_policy, alert_push


def test_alert_push_lists_each_target_and_signals_each_strategy_once():
    event = {"id": "abc", "alert_name": "x"}
    push = alert_push("p", event, [Target(1, 10), Target(1, 11), Target(2, 20)])
    assert push.marker == "p.access.alert.duplicate.abc"
    assert [key for key, _ in push.lists] == [
        "p.access.alert.1.10",
        "p.access.alert.1.11",
        "p.access.alert.2.20",
    ]
    assert {orjson.loads(payload)["id"] for _, payload in push.lists} == {"abc"}
    assert push.signals == ("1", "2")


def test_alert_policy_uses_registered_ttls_and_the_dedup_ttl():
    policy = alert_policy("p", 600)
    assert (policy.signal_key, policy.marker_ttl, policy.list_ttl, policy.signal_ttl) == (
        "p.access.data.signal",
        600,
        1800,
        1800,
    )
