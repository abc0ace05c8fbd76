"""The converge flow's Redis writes: index entries, audit records, one marker per decision."""

from __future__ import annotations

import orjson

from operators.converge.engine import Decision
from state.converge_writes import decision_push
from state.idempotent import Op
from state.keys import Backend

DECISION = Decision(
    id="11.2",
    action_id=11,
    alert_ids=("a1", "a2"),
    converge_id="!sha1#x@11",
    dimension="!sha1#x",
    function="collect",
    decision="skipped",
    reason="collect: skipped",
    time=130.0,
    index=((5, "action_info", "5_abnormal_7"),),
    create_time=120.0,
)


def test_index_then_one_audit_record_per_alert_once_per_decision():
    push = decision_push("p", DECISION)
    assert (push.marker.op, push.marker.key) == (Op.MARK, "p.fta_action.converge.decision.11.2")
    index, *audits = push.writes
    assert (index.op, index.key, index.value, index.param, index.ttl) == (
        Op.ZADD,
        "p.fta_action.converge.5.action_info.5_abnormal_7",
        "action_11",
        "120.0",
        1800,
    )
    assert [w.key for w in audits] == ["p.fta_action.audit.a1", "p.fta_action.audit.a2"]
    record = orjson.loads(audits[0].value)
    assert (record["decision_id"], record["decision"], record["reason"]) == (
        "11.2",
        "skipped",
        "collect: skipped",
    )
    assert {w.backend for w in push.writes} == {Backend.SERVICE}
