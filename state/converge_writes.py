"""Redis writes of the converge flow: per decision, its index entries, its notice-collect
entry and its audit records, once per decision id."""

from __future__ import annotations

import orjson

from operators.converge.audit import audit_record
from operators.converge.records import Decision
from state.idempotent import Op, Push, Write, write
from state.keys import (
    CONVERGE_AUDIT_KEY,
    CONVERGE_DECISION_MARK,
    CONVERGE_DIMENSION_KEY,
    CONVERGE_NOTICE_COLLECT_KEY,
)

INDEX_KEEP_S = 3600 * 60
"""``DimensionCalculator.DimensionExpireMinutes`` (``CONST_MINUTES * 60`` minutes): index
members older than this are removed (ZREMRANGEBYSCORE) before each ZADD."""
INDEX_TRIM_FROM_S = 365 * 86400
"""The trim's lower bound: bkmonitor removes scores from one year back."""


def _index(prefix: str, decision: Decision) -> tuple[Write, ...]:
    """Per index key: ZREMRANGEBYSCORE of the expired members, then ZADD ``action_{id}`` with
    the create time (and EXPIRE), as ``DimensionCalculator.calc_dimension`` does, at the
    decision's time."""
    member = f"action_{decision.action_id}"
    low, high = int(decision.time) - INDEX_TRIM_FROM_S, int(decision.time) - INDEX_KEEP_S
    writes: list[Write] = []
    for entry in decision.index:
        at = {"strategy_id": entry.strategy_id, "dimension": entry.dimension, "value": entry.value}
        writes.append(
            write(Op.ZTRIM, CONVERGE_DIMENSION_KEY, prefix, high, at=at, param=low, ttl=0)
        )
        writes.append(
            write(
                Op.ZADD, CONVERGE_DIMENSION_KEY, prefix, member, at=at, param=decision.create_time
            )
        )
    return tuple(writes)


def _notice(prefix: str, decision: Decision) -> tuple[Write, ...]:
    """HSET the notice-collect pool (``processor.push_to_action_queue``). bkmonitor's last
    write wins, and action ids grow with time; HMAX keeps the newest action whatever order
    decisions of different dimensions reach Redis in (Bytewax does not fix that order)."""
    notice = decision.notice
    if notice is None:
        return ()
    at = {"action_signal": notice.signal, "notice_way": notice.notice_way}
    at["alert_id"] = notice.alert_ids
    entry = write(
        Op.HMAX,
        CONVERGE_NOTICE_COLLECT_KEY,
        prefix,
        decision.action_id,
        at=at,
        param=notice.receiver,
    )
    return (entry,)


def decision_push(prefix: str, decision: Decision) -> Push:
    """The decision's index entries and notice-collect entry, then LPUSH its audit record
    onto each alert's audit list; once per decision id."""
    record = orjson.dumps(audit_record(decision))
    audits = tuple(
        write(Op.LPUSH, CONVERGE_AUDIT_KEY, prefix, record, at={"alert_id": alert})
        for alert in decision.alert_ids
    )
    marker = write(Op.MARK, CONVERGE_DECISION_MARK, prefix, at={"decision_id": decision.id})
    return Push(marker, _index(prefix, decision) + _notice(prefix, decision) + audits)
