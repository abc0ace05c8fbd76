"""What the alert and incident flows write for one record."""

from __future__ import annotations

import gc

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from operators import _native
from operators.incident import Change
from operators.routing import Target
from state.idempotent import Op, Push, Write
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


def python_push(prefix: str, ttl: int, event: dict, targets: tuple[Target, ...]) -> Push:
    """What :class:`AlertWrites` stands for, built with the named tuples in Python."""
    payload = orjson.dumps(event)
    return Push(
        Write(Op.MARK, f"{prefix}.access.alert.duplicate.{event['id']}", b"", ttl),
        (
            *(
                Write(Op.LPUSH, f"{prefix}.access.alert.{t.strategy_id}.{t.item_id}", payload, 1800)
                for t in targets
            ),
            *(
                Write(Op.SIGNAL, f"{prefix}.access.data.signal", str(sid), 1800)
                for sid in dict.fromkeys(t.strategy_id for t in targets)
            ),
        ),
    )


@given(
    st.lists(st.tuples(st.integers(1, 5), st.integers(1, 5)), min_size=1, max_size=6, unique=True),
    st.text(min_size=1, max_size=40),
    st.integers(1, 10**6),
)
def test_alert_push_built_in_c_equals_the_named_tuples_built_in_python(pairs, uid, ttl):
    targets = tuple(Target(*pair) for pair in pairs)
    event = {"id": uid, "alert_name": "x", "tags": [{"key": "k", "value": uid}]}
    writes = AlertWrites("p", ttl)
    for _ in range(2):  # the targets' shapes made, then remembered
        push = writes(event, targets)
        assert push == python_push("p", ttl, event, targets)
        assert type(push) is Push
        assert {type(w) for w in (push.marker, *push.writes)} == {Write}
        assert type(push.writes) is tuple
        assert gc.is_tracked(push) and gc.is_tracked(push.marker)


def test_stamp_push_refuses_what_is_not_a_push_of_writes():
    marker = Write(Op.MARK, "", b"", 600)
    with pytest.raises(TypeError):
        _native.stamp_push(marker, "k", b"v", ("not a write",), (), Push)
    with pytest.raises(TypeError):
        _native.stamp_push(marker, "k", b"v", (), (), dict)
    with pytest.raises(TypeError):
        _native.stamp_push(marker, "k", b"v", ())


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
