"""What the event flow writes for one anomaly (one event record for one strategy item)."""

from __future__ import annotations

from typing import NamedTuple

from operators.event import Decided
from operators.json_bytes import json_bytes
from operators.md5 import count_md5
from operators.memo import remember
from operators.strategy import Strategy
from state.data_writes import priority_drop, priority_write
from state.idempotent import Op, Push, Write, write
from state.keys import (
    ANOMALY_LIST_KEY,
    ANOMALY_SIGNAL_KEY,
    CHECK_RESULT_CACHE_KEY,
    EVENT_DEDUP_KEY,
    LAST_CHECKPOINTS_CACHE_KEY,
    QOS_CONTROL_KEY,
    STRATEGY_SNAPSHOT_KEY,
)

QOS_DROP_ALARM_THRESHOLD = 3
"""bkmonitor's ``QOS_DROP_ALARM_THREADHOLD``: a QoS counter above this drops the record."""
_KEPT = 8192
"""How many strategy items, and per item series and QoS gates, :func:`event_push` remembers."""
_MARK, _GATE, _ZADD, _HMAX, _LPUSH = Op.MARK, Op.GATE, Op.ZADD, Op.HMAX, Op.LPUSH
"""The write kinds :func:`event_push` makes per anomaly (looking an enum member up costs as
much as building a tuple; the writes it makes per anomaly give every field by position, which
builds them at half the cost of keywords)."""


class _Item(NamedTuple):
    """What every anomaly of one strategy item writes alike (made once per item)."""

    list_key: str
    signal: Write
    checkpoint_key: str
    snapshot: Write
    marker: tuple[str, str]
    """The dedup marker's key before and after the record digest (without the prefix)."""
    gates: dict[tuple[str, int], Write]
    """Per (target ip, level): its QoS gate."""
    series: dict[tuple[str, int], tuple[str, str]]
    """Per series (dimensions md5, level): its check-result key and its checkpoint field."""


_items: dict[tuple[str, int, bytes], _Item] = {}


def _item(prefix: str, strategy: Strategy, item_id: int) -> _Item:
    memo = (prefix, item_id, strategy.snapshot)
    found = _items.get(memo)
    if found is None:
        sid = strategy.id
        at = {"strategy_id": sid, "item_id": item_id}
        snapshot_at = {"strategy_id": sid, "update_time": strategy.number("update_time")}
        found = _Item(
            ANOMALY_LIST_KEY.key(prefix, **at),
            write(Op.SIGNAL, ANOMALY_SIGNAL_KEY, prefix, f"{sid}.{item_id}"),
            LAST_CHECKPOINTS_CACHE_KEY.key(prefix, **at),
            write(Op.SET, STRATEGY_SNAPSHOT_KEY, prefix, strategy.snapshot, at=snapshot_at),
            EVENT_DEDUP_KEY.around(prefix, "record_digest", **at),
            {},
            {},
        )
        remember(_items, memo, found, _KEPT)
    return found


def _series(prefix: str, item: _Item, sid: int, iid: int, md5: str, level: int) -> tuple[str, str]:
    """A series' check-result key and checkpoint field, remembered per strategy item."""
    found = item.series.get((md5, level))
    if found is None:
        at = {"strategy_id": sid, "item_id": iid, "dimensions_md5": md5, "level": level}
        found = (
            CHECK_RESULT_CACHE_KEY.key(prefix, **at),
            LAST_CHECKPOINTS_CACHE_KEY.field(dimensions_md5=md5, level=level),
        )
        remember(item.series, (md5, level), found, _KEPT)
    return found


def _gate(prefix: str, item: _Item, strategy: Strategy, iid: int, ip: str, level: int) -> Write:
    """The QoS gate of a target and level, its field ``count_md5([biz, sid, iid, ip, level])``;
    remembered per strategy item."""
    found = item.gates.get((ip, level))
    if found is None:
        field = count_md5([strategy.bk_biz_id, strategy.id, iid, ip, level])
        found = Write(
            _GATE,
            QOS_CONTROL_KEY.key(prefix),
            str(QOS_DROP_ALARM_THRESHOLD),
            QOS_CONTROL_KEY.ttl,
            field,
            QOS_CONTROL_KEY.backend,
        )
        remember(item.gates, (ip, level), found, _KEPT)
    return found


def event_push(prefix: str, decided: Decided, dedup_ttl: int) -> Push:
    """Once per event record and strategy item within ``dedup_ttl``: the QoS gate, the
    check-result zset and the last checkpoint, the strategy snapshot, the priority claims and
    deletions the record carries, then, unless priority inhibited it, the anomaly list entry
    and the item signal (bkmonitor's ``push()``: check results are written before
    ``PriorityChecker`` runs, the anomaly lists after). What recurs for a strategy item is
    built once."""
    anomaly = decided.anomaly
    strategy = anomaly.strategy
    sid, iid, level, md5 = strategy.id, anomaly.item_id, anomaly.level, anomaly.dimension_md5
    item = _item(prefix, strategy, iid)
    t = str(anomaly.event_time)
    before, after = item.marker
    check_result, checkpoint_field = _series(prefix, item, sid, iid, md5, level)
    writes = (
        _gate(prefix, item, strategy, iid, anomaly.target_ip, level),
        Write(
            _ZADD,
            check_result,
            f"{t}|ANOMALY",
            CHECK_RESULT_CACHE_KEY.ttl,
            t,
            CHECK_RESULT_CACHE_KEY.backend,
        ),
        Write(
            _HMAX,
            item.checkpoint_key,
            t,
            LAST_CHECKPOINTS_CACHE_KEY.ttl,
            checkpoint_field,
            LAST_CHECKPOINTS_CACHE_KEY.backend,
        ),
        item.snapshot,
    )
    if decided.claims or decided.drops:
        group = anomaly.contender.group if anomaly.contender else ""
        writes += tuple(priority_write(prefix, group, f, entry) for f, entry in decided.claims)
        writes += tuple(priority_drop(prefix, group, f, entry) for f, entry in decided.drops)
    if not decided.inhibited:
        element = json_bytes(anomaly.element)
        writes += (
            Write(
                _LPUSH, item.list_key, element, ANOMALY_LIST_KEY.ttl, "", ANOMALY_LIST_KEY.backend
            ),
            item.signal,
        )
    marker = EVENT_DEDUP_KEY.prefixed(prefix, f"{before}{anomaly.record_digest}{after}")
    return Push(
        Write(_MARK, marker, b"", dedup_ttl, "", EVENT_DEDUP_KEY.backend),
        writes,
    )
