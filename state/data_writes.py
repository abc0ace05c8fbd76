"""What the time-series access flows write to Redis for one record, as
:class:`~state.idempotent.Push`: the record id is the marker, SADDed to bkmonitor's dedup set
of its strategy group and data time, so a replayed point writes nothing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from operators.data_filters import anomaly_levels, anomaly_record
from operators.json_bytes import json_bytes
from operators.timeseries import AccessRecord, GroupPlan, Member, noise_key_hash, noise_member
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
    NO_DATA_LIST_KEY,
    NOISE_REDUCE_TOTAL_KEY,
    STRATEGY_CHECKPOINT_KEY,
    STRATEGY_SNAPSHOT_KEY,
)

MIN_LIST_TTL = 1800
MIN_NO_DATA_TTL = 600


def dedup_marker(prefix: str, group_key: str, interval: int, record: Mapping[str, Any]) -> Write:
    """SADD of the record id to ``access.data.duplicate.strategy_group_{g}.{time}``, TTL
    ``10 x interval`` (bkmonitor's dedup set, here also the idempotency marker)."""
    set_ = _dedup_set(prefix, group_key, interval, record["time"])
    return Write(set_.op, set_.key, record["record_id"], set_.ttl, set_.param, set_.backend)


@lru_cache(maxsize=8192)
def _dedup_set(prefix: str, group_key: str, interval: int, time: Any) -> Write:
    """The SADD to one dedup set (its member still to fill in): the same for every record of
    a group and data time."""
    at = {"strategy_group_key": group_key, "dt_event_time": time}
    return write(Op.SADD, ACCESS_DUPLICATE_KEY, prefix, at=at, ttl=10 * interval)


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


def priority_drop(prefix: str, priority_group_key: str, md5: str, entry: str) -> Write:
    """HDEL of a series' expired claim ``entry`` from ``access.data.priority.{key}``
    (``sync_priority``), unless the series was claimed again since; the hash's TTL is left
    to its claims."""
    at = {"priority_group_key": priority_group_key}
    return write(Op.HDROP, ACCESS_PRIORITY_KEY, prefix, entry, at=at, param=md5, ttl=0)


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
    payload = json_bytes(record)
    lists, signals = _target_writes(prefix, tuple(targets), max(MIN_LIST_TTL, 5 * interval))
    filled = (Write(w.op, w.key, payload, w.ttl, w.param, w.backend) for w in lists)
    return Push(dedup_marker(prefix, group_key, interval, record), (*filled, *extra, *signals))


@lru_cache(maxsize=4096)
def _target_writes(
    prefix: str, targets: tuple[tuple[int, int], ...], ttl: int
) -> tuple[tuple[Write, ...], tuple[Write, ...]]:
    """The data-list pushes of ``targets`` (their values still to fill in) and their signals:
    the same for every record of the same targets."""
    lists = tuple(
        write(Op.LPUSH, DATA_LIST_KEY, prefix, at={"strategy_id": s, "item_id": i}, ttl=ttl)
        for s, i in targets
    )
    signals = tuple(
        write(Op.SIGNAL, DATA_SIGNAL_KEY, prefix, sid)
        for sid in dict.fromkeys(str(s) for s, _ in targets)
    )
    return lists, signals


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
                write(Op.LPUSH, ANOMALY_LIST_KEY, prefix, json_bytes(check.anomaly), at=item_at)
            )
            signals.append(
                write(Op.SIGNAL, ANOMALY_SIGNAL_KEY, prefix, f"{check.strategy_id}.{check.item_id}")
            )
    return Push(dedup_marker(prefix, group_key, interval, record), (*writes, *extra, *signals))


def no_data_writes(prefix: str, record: AccessRecord, plan: GroupPlan) -> tuple[Write, ...]:
    """``push``: every record that passed the filters onto ``access.nodata.{sid}.{iid}`` of
    each item whose no-data detection is on (EXPIRE max(600, 5 x interval))."""
    if not record.passed_filters or not plan.no_data:
        return ()
    payload = json_bytes(record.data)
    return tuple(
        write(
            Op.LPUSH,
            NO_DATA_LIST_KEY,
            prefix,
            payload,
            at={"strategy_id": m.strategy.id, "item_id": m.item.id},
            ttl=max(MIN_NO_DATA_TTL, 5 * m.interval),
        )
        for m in plan.members
        if m.no_data
    )


def noise_writes(prefix: str, record: AccessRecord, kept: Sequence[Member]) -> tuple[Write, ...]:
    """``_push_noise_data``: per kept item whose strategy reduces noise, ZADD the md5 of the
    record's noise-dimension values, scored by its data time."""
    out = []
    for m in kept:
        if m.noise_dimensions is None:
            continue
        at = {
            "strategy_id": m.strategy.id,
            "noise_dimension_hash": noise_key_hash(m.noise_dimensions),
        }
        member = noise_member(record.data["dimensions"], m.noise_dimensions)
        out.append(
            write(Op.ZADD, NOISE_REDUCE_TOTAL_KEY, prefix, member, at=at, param=record.data["time"])
        )
    return tuple(out)


def threshold_checks(prefix: str, data: Mapping[str, Any], kept: Sequence[Member]) -> list[Checked]:
    """The access-detect merge's ``Threshold`` check of ``data`` for each kept item."""
    out = []
    for m in kept:
        sid, item = m.strategy.id, m.item
        update_time = m.strategy.number("update_time")
        hit = anomaly_levels(item.algorithms, data["value"])
        snapshot = snapshot_key(prefix, sid, update_time)
        anomaly = anomaly_record(data, hit, sid, item.id, snapshot) if hit else None
        levels = tuple(sorted({int(a.get("level", 1)) for a in item.algorithms}))
        out.append(
            Checked(sid, item.id, update_time, m.strategy.snapshot, levels, tuple(hit), anomaly)
        )
    return out


def record_push(
    prefix: str,
    record: AccessRecord,
    plan: GroupPlan,
    detect: bool,
    checkpoint: Sequence[Write] = (),
) -> Push:
    """Everything one access record writes, behind its dedup-set marker: its kept items'
    data lists (or, with ``detect``, the Threshold check's results and anomalies), the no-data
    lists, the noise-reduce zsets, the priority hash's claims and deletions and ``checkpoint``;
    then the signals. A record access dropped writes its marker and no-data lists only."""
    kept = plan.kept_members(record.kept) if record.drop is None else ()
    extra = tuple(checkpoint)
    if record.priority_updates or record.priority_drops:
        extra = (
            *(priority_write(prefix, g, md5, entry) for g, md5, entry in record.priority_updates),
            *(priority_drop(prefix, g, md5, entry) for g, md5, entry in record.priority_drops),
            *extra,
        )
    if plan.noise:
        extra = (*noise_writes(prefix, record, kept), *extra)
    if plan.no_data:
        extra = (*no_data_writes(prefix, record, plan), *extra)
    group, interval = plan.group.key, plan.group.interval
    if detect:
        checks = threshold_checks(prefix, record.data, kept)
        return anomaly_push(prefix, group, interval, record.data, checks, extra)
    targets = [(m.strategy.id, m.item.id) for m in kept]
    return data_push(prefix, group, interval, record.data, targets, extra)
