"""Redis writes of the converge flow: per decision, its index entries, its notice-collect
entry and its audit records, once per decision id."""

from __future__ import annotations

from functools import lru_cache

from operators.converge.records import Decision, IndexEntry
from state.idempotent import Op, Push, Write
from state.keys import CONVERGE_AUDIT_KEY as AUDIT
from state.keys import CONVERGE_DECISION_MARK as MARK
from state.keys import CONVERGE_DIMENSION_KEY as INDEX
from state.keys import CONVERGE_NOTICE_COLLECT_KEY as NOTICE

INDEX_KEEP_S = 3600 * 60
"""``DimensionCalculator.DimensionExpireMinutes`` (``CONST_MINUTES * 60`` minutes): index
members older than this are removed (ZREMRANGEBYSCORE) before each ZADD."""
INDEX_TRIM_FROM_S = 365 * 86400
"""The trim's lower bound: bkmonitor removes scores from one year back."""


@lru_cache(maxsize=16384)
def _index_keys(prefix: str, index: tuple[IndexEntry, ...]) -> tuple[str, ...]:
    """The keys of an action's index entries: the actions of one dimension share them."""
    return tuple(
        INDEX.key(
            prefix, strategy_id=entry.strategy_id, dimension=entry.dimension, value=entry.value
        )
        for entry in index
    )


_ZTRIM, _ZADD, _LPUSH, _MARK = Op.ZTRIM, Op.ZADD, Op.LPUSH, Op.MARK
"""The write kinds made per decision (looking an enum member up costs as much as building a
tuple)."""
_write = tuple.__new__
"""``_write(Write, fields)`` builds a write from its fields without the named tuple's own
``__new__`` (a Python function), for about 60 % of its cost (``timeit``: 251 against 411 ns):
the writes of a decision are the converge flow's most numerous objects."""


def _index(prefix: str, decision: Decision) -> list[Write]:
    """Per index key: ZREMRANGEBYSCORE of the expired members, then ZADD ``action_{id}`` with
    the create time (and EXPIRE), as ``DimensionCalculator.calc_dimension`` does, at the
    decision's time."""
    member = f"action_{decision.action_id}"
    time = int(decision.time)
    low, high = str(time - INDEX_TRIM_FROM_S), str(time - INDEX_KEEP_S)
    score, ttl, backend = str(decision.create_time), INDEX.ttl, INDEX.backend
    writes: list[Write] = []
    for key in _index_keys(prefix, decision.index):
        writes.append(_write(Write, (_ZTRIM, key, high, 0, low, backend)))
        writes.append(_write(Write, (_ZADD, key, member, ttl, score, backend)))
    return writes


def _notice(prefix: str, decision: Decision) -> list[Write]:
    """HSET the notice-collect pool (``processor.push_to_action_queue``). bkmonitor's last
    write wins, and action ids grow with time; HMAX keeps the newest action whatever order
    decisions of different dimensions reach Redis in (Bytewax does not fix that order)."""
    notice = decision.notice
    if notice is None:
        return []
    key = NOTICE.key(
        prefix, action_signal=notice.signal, notice_way=notice.notice_way, alert_id=notice.alert_ids
    )
    return [
        Write(Op.HMAX, key, str(decision.action_id), NOTICE.ttl, notice.receiver, NOTICE.backend)
    ]


class DecisionWrites:
    """The writes of one decision under ``prefix``: its index entries and notice-collect
    entry, then LPUSH of its audit record (``record``,
    :func:`~operators.converge.audit.audit_record` as JSON) onto each alert's audit list; once
    per decision id. The marker and audit keys are made from their heads, once per flow."""

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._marker_head = MARK.head(prefix, "decision_id")
        self._audit_head = AUDIT.head(prefix, "alert_id")

    def __call__(self, decision: Decision, record: bytes) -> Push:
        writes = _index(self._prefix, decision) + _notice(self._prefix, decision)
        ttl, backend, head = AUDIT.ttl, AUDIT.backend, self._audit_head
        for alert in decision.alert_ids:
            writes.append(_write(Write, (_LPUSH, head + alert, record, ttl, "", backend)))
        marker = (_MARK, self._marker_head + decision.id, b"", MARK.ttl, "", MARK.backend)
        return Push(_write(Write, marker), tuple(writes))
