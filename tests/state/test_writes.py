"""What the alert and incident flows write for one record."""

from __future__ import annotations

import orjson

from operators.incident import Change
from operators.routing import Target
from state.idempotent import Op
from state.keys import Backend
from state.writes import AlertWrites, incident_push


def test_alert_push_lists_each_target_then_signals_each_strategy_once():
    event = {"id": "abc", "alert_name": "x"}
    push = AlertWrites("p", 600)(event, (Target(1, 10), Target(1, 11), Target(2, 20)))
    assert (push.marker.op, push.marker.key, push.marker.ttl) == (
        Op.MARK,
        "p.access.alert.duplicate.abc",
        600,
    )
    assert [(w.op, w.key, w.ttl) for w in push.writes] == [
        (Op.LPUSH, "p.access.alert.1.10", 1800),
        (Op.LPUSH, "p.access.alert.1.11", 1800),
        (Op.LPUSH, "p.access.alert.2.20", 1800),
        (Op.SIGNAL, "p.access.data.signal", 1800),
        (Op.SIGNAL, "p.access.data.signal", 1800),
    ]
    assert {orjson.loads(w.value)["id"] for w in push.writes if w.op is Op.LPUSH} == {"abc"}
    assert [w.value for w in push.writes if w.op is Op.SIGNAL] == ["1", "2"]
    assert {w.backend for w in (push.marker, *push.writes)} == {Backend.QUEUE}


def test_incident_push_writes_document_history_and_links_then_the_signal():
    history = ({"operation_type": "incident_update"}, {"operation_type": "incident_recover"})
    change = Change("9", {"id": "1009", "status": "abnormal"}, history, ("a1", "a2"))
    push = incident_push("p", "uid1", change, 600)
    assert (push.marker.key, push.marker.ttl) == ("p.incident.sync.duplicate.uid1", 600)
    assert [(w.op, w.key, w.value, w.ttl) for w in push.writes] == [
        (Op.LPUSH, "p.incident.history.9", orjson.dumps(history[0]), 604800),
        (Op.LPUSH, "p.incident.history.9", orjson.dumps(history[1]), 604800),
        (Op.SET, "p.incident.doc.9", orjson.dumps(change.document), 604800),
        (Op.SADD, "p.incident.alerts.9", "a1", 604800),
        (Op.SADD, "p.incident.alerts.9", "a2", 604800),
        (Op.SIGNAL, "p.incident.signal", "9", 1800),
    ]
    quiet = incident_push("p", "uid2", Change("9", change.document, (), ()), 600)
    assert [w.op for w in quiet.writes] == [Op.SET, Op.SIGNAL]
