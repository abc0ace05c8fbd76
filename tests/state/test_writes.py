"""What the alert flow writes for one cleaned alert."""

from __future__ import annotations

import orjson

from operators.routing import Target
from state.writes import alert_policy, alert_push, incident_policy, incident_push


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
    assert (policy.signal_key, policy.marker_ttl, policy.data_ttl, policy.signal_ttl) == (
        "p.access.data.signal",
        600,
        1800,
        1800,
    )


def test_incident_push_writes_document_history_and_links_once_per_message():
    from operators.incident import Change

    change = Change("9", {"id": "1009", "status": "abnormal"}, {"status": "abnormal"}, ("a1", "a2"))
    push = incident_push("p", "uid1", change)
    assert push.marker == "p.incident.sync.duplicate.uid1"
    assert push.strings == (("p.incident.doc.9", orjson.dumps(change.document)),)
    assert push.lists == (("p.incident.history.9", orjson.dumps(change.history)),)
    assert push.members == (("p.incident.alerts.9", "a1"), ("p.incident.alerts.9", "a2"))
    assert push.signals == ("9",)
    quiet = incident_push("p", "uid2", Change("9", change.document, None, ()))
    assert (quiet.lists, quiet.members) == ((), ())


def test_incident_policy_keeps_documents_a_week():
    policy = incident_policy("p", 600)
    assert (policy.signal_key, policy.data_ttl, policy.signal_ttl) == (
        "p.incident.signal",
        604800,
        1800,
    )
