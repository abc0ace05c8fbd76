"""What the event flow writes for one anomaly (one event record for one strategy item)."""

from __future__ import annotations

import orjson

from operators.event import Decided
from operators.md5 import count_md5
from state.data_writes import priority_write
from state.idempotent import Op, Push, write
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


def event_push(prefix: str, decided: Decided, dedup_ttl: int) -> Push:
    """Once per event record and strategy item within ``dedup_ttl``: the QoS gate, the
    check-result zset and the last checkpoint, the strategy snapshot, the priority claims the
    record carries, then, unless priority inhibited it, the anomaly list entry and the item
    signal (bkmonitor's ``push()``: check results are written before ``PriorityChecker`` runs,
    the anomaly lists after)."""
    anomaly = decided.anomaly
    strategy = anomaly.strategy
    sid, iid, level, t = strategy.id, anomaly.item_id, anomaly.level, anomaly.event_time
    at = {"strategy_id": sid, "item_id": iid}
    group = anomaly.contender.group if anomaly.contender else ""
    claims = tuple(priority_write(prefix, group, md5, entry) for md5, entry in decided.claims)
    queued = (
        ()
        if decided.inhibited
        else (
            write(Op.LPUSH, ANOMALY_LIST_KEY, prefix, orjson.dumps(anomaly.element), at=at),
            write(Op.SIGNAL, ANOMALY_SIGNAL_KEY, prefix, f"{sid}.{iid}"),
        )
    )
    series = {"dimensions_md5": anomaly.dimension_md5, "level": level}
    qos_field = count_md5([strategy.bk_biz_id, sid, iid, anomaly.target_ip, level])
    snapshot_at = {"strategy_id": sid, "update_time": strategy.number("update_time")}
    return Push(
        write(
            Op.MARK,
            EVENT_DEDUP_KEY,
            prefix,
            at={"record_digest": anomaly.record_digest, **at},
            ttl=dedup_ttl,
        ),
        (
            write(Op.GATE, QOS_CONTROL_KEY, prefix, QOS_DROP_ALARM_THRESHOLD, param=qos_field),
            write(
                Op.ZADD,
                CHECK_RESULT_CACHE_KEY,
                prefix,
                f"{t}|ANOMALY",
                at={**at, **series},
                param=t,
            ),
            write(
                Op.HMAX,
                LAST_CHECKPOINTS_CACHE_KEY,
                prefix,
                t,
                at=at,
                param=LAST_CHECKPOINTS_CACHE_KEY.field(**series),
            ),
            write(
                Op.SET,
                STRATEGY_SNAPSHOT_KEY,
                prefix,
                strategy.snapshot,
                at=snapshot_at,
            ),
            *claims,
            *queued,
        ),
    )
