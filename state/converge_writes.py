"""Redis writes of the converge flow: per decision, its index entries and its audit records."""

from __future__ import annotations

import orjson

from operators.converge.audit import audit_record
from operators.converge.engine import Decision
from state.idempotent import Op, Push, write
from state.keys import CONVERGE_AUDIT_KEY, CONVERGE_DECISION_MARK, CONVERGE_DIMENSION_KEY


def decision_push(prefix: str, decision: Decision) -> Push:
    """ZADD ``action_{id}`` on the action's converge index keys, then LPUSH the audit record
    onto each alert's audit list; once per decision id."""
    member = f"action_{decision.action_id}"
    index = tuple(
        write(
            Op.ZADD,
            CONVERGE_DIMENSION_KEY,
            prefix,
            member,
            at={"strategy_id": sid, "dimension": dim, "value": value},
            param=decision.create_time,
        )
        for sid, dim, value in decision.index
    )
    record = orjson.dumps(audit_record(decision))
    audits = tuple(
        write(Op.LPUSH, CONVERGE_AUDIT_KEY, prefix, record, at={"alert_id": alert})
        for alert in decision.alert_ids
    )
    marker = write(Op.MARK, CONVERGE_DECISION_MARK, prefix, at={"decision_id": decision.id})
    return Push(marker, index + audits)
