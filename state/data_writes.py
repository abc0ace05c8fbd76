"""What the time-series access flows write to Redis for one record, as
:class:`~state.idempotent.Push`: the record id is the marker, SADDed to bkmonitor's dedup set
of its strategy group and data time, so a replayed point writes nothing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from state.idempotent import Op, Push, Write, write
from state.keys import (
    ACCESS_DUPLICATE_KEY,
    ACCESS_PRIORITY_KEY,
    ACCESS_RUN_TIMESTAMP_KEY,
    ANOMALY_LIST_KEY,
    ANOMALY_SIGNAL_KEY,
    CHECK_RESULT_CACHE_KEY,
    DATA_LIST_KEY,
    DATA_SIGNAL_KEY,
    LAST_CHECKPOINTS_CACHE_KEY,
    STRATEGY_CHECKPOINT_KEY,
    STRATEGY_SNAPSHOT_KEY,
)

MIN_LIST_TTL = 1800


def dedup_marker(prefix: str, group_key: str, interval: int, record: Mapping[str, Any]) -> Write:
    """SADD of the record id to ``access.data.duplicate.strategy_group_{g}.{time}``, TTL
    ``10 x interval`` (bkmonitor's dedup set, here also the idempotency marker)."""
    at = {"strategy_group_key": group_key, "dt_event_time": record["time"]}
    return write(
        Op.SADD, ACCESS_DUPLICATE_KEY, prefix, record["record_id"], at=at, ttl=10 * interval
    )


def checkpoint_writes(prefix: str, group_key: str, checkpoint: int, now: int) -> tuple[Write, ...]:
    """The group's checkpoint (newest data time) and its last access run time."""
    at = {"strategy_group_key": group_key}
    return (
        write(Op.SET, STRATEGY_CHECKPOINT_KEY, prefix, checkpoint, at=at),
        write(Op.SET, ACCESS_RUN_TIMESTAMP_KEY, prefix, now, at=at, ttl=0),
    )


def priority_write(prefix: str, priority_group_key: str, md5: str, entry: str) -> Write:
    """HSET of a series' ``"priority:time"`` in ``access.data.priority.{key}``."""
    at = {"priority_group_key": priority_group_key}
    return write(Op.HSET, ACCESS_PRIORITY_KEY, prefix, entry, at=at, param=md5)


def data_push(
    prefix: str,
    group_key: str,
    interval: int,
    record: Mapping[str, Any],
    targets: Sequence[tuple[int, int]],
    extra: Sequence[Write] = (),
) -> Push:
    """The record onto ``access.data.{sid}.{iid}`` of each target (EXPIRE max(1800, 5 x
    interval)), then ``extra``, then each strategy id onto ``access.data.signal``."""
    payload = orjson.dumps(record)
    ttl = max(MIN_LIST_TTL, 5 * interval)
    lists = tuple(
        write(
            Op.LPUSH, DATA_LIST_KEY, prefix, payload, at={"strategy_id": s, "item_id": i}, ttl=ttl
        )
        for s, i in targets
    )
    signals = tuple(
        write(Op.SIGNAL, DATA_SIGNAL_KEY, prefix, sid)
        for sid in dict.fromkeys(str(s) for s, _ in targets)
    )
    return Push(dedup_marker(prefix, group_key, interval, record), (*lists, *extra, *signals))


@dataclass(frozen=True)
class Checked:
    """One item's Threshold check of a record: its levels and those the value hit."""

    strategy_id: int
    item_id: int
    update_time: int
    strategy_json: bytes
    levels: tuple[int, ...]
    hit: tuple[int, ...]
    anomaly: Mapping[str, Any] | None


def snapshot_key(prefix: str, strategy_id: int, update_time: int) -> str:
    return STRATEGY_SNAPSHOT_KEY.key(prefix, strategy_id=strategy_id, update_time=update_time)


def anomaly_push(
    prefix: str,
    group_key: str,
    interval: int,
    record: Mapping[str, Any],
    checks: Sequence[Checked],
    extra: Sequence[Write] = (),
) -> Push:
    """Detect's output for a static-threshold group (bkmonitor's access-detect merge): per
    item and level the check result and last checkpoint; per anomalous item the strategy
    snapshot and the anomaly; then ``extra``; then ``"{sid}.{iid}"`` anomaly signals."""
    ts = record["time"]
    md5 = record["record_id"].split(".")[0]
    writes: list[Write] = []
    signals: list[Write] = []
    for check in checks:
        item_at = {"strategy_id": check.strategy_id, "item_id": check.item_id}
        for level in check.levels:
            at = {**item_at, "dimensions_md5": md5, "level": level}
            member = f"{ts}|ANOMALY" if level in check.hit else f"{ts}|{record['value']}"
            writes.append(write(Op.ZADD, CHECK_RESULT_CACHE_KEY, prefix, member, at=at, param=ts))
            for field_md5 in (md5, "__ALL__"):
                field = LAST_CHECKPOINTS_CACHE_KEY.field(dimensions_md5=field_md5, level=level)
                writes.append(
                    write(Op.HMAX, LAST_CHECKPOINTS_CACHE_KEY, prefix, ts, at=item_at, param=field)
                )
        if check.anomaly is not None:
            at = {"strategy_id": check.strategy_id, "update_time": check.update_time}
            writes.append(write(Op.SET, STRATEGY_SNAPSHOT_KEY, prefix, check.strategy_json, at=at))
            writes.append(
                write(Op.LPUSH, ANOMALY_LIST_KEY, prefix, orjson.dumps(check.anomaly), at=item_at)
            )
            signals.append(
                write(Op.SIGNAL, ANOMALY_SIGNAL_KEY, prefix, f"{check.strategy_id}.{check.item_id}")
            )
    return Push(dedup_marker(prefix, group_key, interval, record), (*writes, *extra, *signals))
