"""Decision messages and audit records (one per decision), as JSON-ready dicts."""

from __future__ import annotations

from typing import Any

from operators.converge.records import Decision


def decision_message(decision: Decision) -> dict[str, Any]:
    """What downstream executors read from the decision topic."""
    return {
        "id": decision.id,
        "action_id": decision.action_id,
        "decision": decision.decision,
        "alert_ids": list(decision.alert_ids),
        "converge_id": decision.converge_id,
        "skipped": list(decision.skipped),
        "time": decision.time,
    }


def audit_record(decision: Decision) -> dict[str, Any]:
    """Who was decided what, by which converge function, and why, in words."""
    return {
        "decision_id": decision.id,
        "action_id": decision.action_id,
        "alert_ids": list(decision.alert_ids),
        "converge_id": decision.converge_id,
        "dimension": decision.dimension,
        "function": decision.function,
        "decision": decision.decision,
        "reason": decision.reason,
        "time": decision.time,
    }
