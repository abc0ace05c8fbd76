"""Periodic data access: Kafka metric points → per strategy group → Redis.

``python -m bytewax.run flows.data``. bkmonitor pulls each strategy group's points from its
TSDB every interval (bkmonitor.md §2.1); alarmflow takes the same points from Kafka, messages
``{result_table_id, time, dimensions, metrics}``, and keys them by strategy group (query_md5),
the group whose first query config reads that result table and metric for that business.
Per group, Bytewax state holds the newest data time seen and the checkpoint. Points are handled
one at a time, not in interval windows: a point older than ``max(10 x interval, 1800)`` s
behind the group's newest *event time* is expired (event time, so replays and tests give the
same result as live runs); the record id is SADDed to the group's dedup set of its data time
(TTL 10 x interval), which drops duplicates and makes replays write nothing twice. Groups whose
algorithms are all ``Threshold`` get detection in access, as bkmonitor's access-detect merge:
check results, last checkpoints, anomalies and ``"{sid}.{iid}"`` anomaly signals. Other groups
get ``access.data.{sid}.{iid}`` and the strategy ids on ``access.data.signal``. Every push
also SETs the group checkpoint (max data time) and its last run time.
"""

from __future__ import annotations

import time
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow

from alarmflow.config import Settings
from alarmflow.metrics import DROPPED, Stage
from flows.common import (
    dead_letters,
    flow_from_env,
    load_hosts,
    load_strategies,
    parse_records,
    shard_by_business,
    write_once,
)
from flows.kafka_io import kafka_input
from flows.points import item_matchers, point_parser, retaining
from flows.redis_sink import Routed
from operators.data_filters import (
    HostStatus,
    PriorityCandidate,
    anomaly_levels,
    anomaly_record,
    check_priority,
    expire_window,
    host_status,
)
from operators.records import RESULT_FIELD, Point, clean_record, record_spec
from operators.rejects import SourceRecord
from operators.strategy import Item
from operators.strategy_group import by_result_table, interval_of, strategy_groups
from state.data_writes import (
    Checked,
    anomaly_push,
    checkpoint_writes,
    data_push,
    priority_write,
    snapshot_key,
)
from state.idempotent import Write

NAME = "data"
GroupPoint = tuple[str, SourceRecord, dict[str, Any]]
"""A point for one strategy group: the group key, its Kafka record, the raw row."""


def build_flow(settings: Settings) -> Dataflow:
    prefix = settings.key_prefix
    hosts = load_hosts(settings)
    strategies = {s.id: s for s in load_strategies(settings)}
    groups = strategy_groups(strategies.values())
    by_table = by_result_table(groups.values())
    specs = {key: record_spec(group.first) for key, group in groups.items()}
    matchers = item_matchers(groups.values(), strategies)
    priorities = {
        sid: (int(s.raw["priority"]), str(s.raw["priority_group_key"]))
        for sid, s in strategies.items()
        if s.raw.get("priority") is not None and s.raw.get("priority_group_key")
    }
    dropped = {
        reason: DROPPED.labels(NAME, reason)
        for reason in (
            "no_business",
            "no_strategy",
            "no_value",
            "expired",
            "out_of_range",
            "inhibited",
            HostStatus.UNKNOWN,
            HostStatus.DISABLED,
        )
    }

    def to_groups(item: tuple[SourceRecord, Point]) -> list[tuple[str, GroupPoint]]:
        record, point = item
        if not point.bk_biz_id:
            dropped["no_business"].inc()
            return []
        out = []
        for group in by_table.get((point.result_table_id, point.bk_biz_id), ()):
            field = str(group.query.get("metric_field") or "")
            if field in point.raw:
                raw = {**point.raw, RESULT_FIELD: point.raw[field]}
                out.append((group.key, (group.key, record, raw)))
        if not out:
            dropped["no_strategy"].inc()
        return out

    def checks(data: dict[str, Any], retained: list[tuple[int, Item]]) -> list[Checked]:
        out = []
        for sid, item in retained:
            strategy = strategies[sid]
            update_time = strategy.number("update_time")
            hit = anomaly_levels(item.algorithms, data["value"])
            anomaly = (
                anomaly_record(data, hit, sid, item.id, snapshot_key(prefix, sid, update_time))
                if hit
                else None
            )
            levels = tuple(sorted({int(a.get("level", 1)) for a in item.algorithms}))
            out.append(
                Checked(
                    sid,
                    item.id,
                    update_time,
                    strategy.snapshot,
                    levels,
                    tuple(hit),
                    anomaly,
                )
            )
        return out

    def inhibit(
        table: dict[str, dict[str, str]], data: dict[str, Any], retained: list[tuple[int, Item]]
    ) -> tuple[list[tuple[int, Item]], list[Write]]:
        """bkmonitor's PriorityChecker over the priority hashes held in ``table`` (data time
        as the clock); the hash updates are mirrored to Redis."""
        md5 = data["record_id"].split(".")[0]
        candidates: dict[str, list[PriorityCandidate]] = {}
        for sid, it in retained:
            if sid in priorities:
                prio, pg = priorities[sid]
                interval = interval_of(it)
                candidates.setdefault(pg, []).append(
                    PriorityCandidate(f"{sid}.{it.id}", prio, interval)
                )
        inhibited: set[str] = set()
        writes = []
        for pg, cands in candidates.items():
            stored = table.setdefault(pg, {})
            out, updates = check_priority(stored, md5, cands, data["time"])
            stored.update(updates)
            inhibited |= out
            writes.extend(priority_write(prefix, pg, f, v) for f, v in updates.items())
        kept = [(sid, it) for sid, it in retained if f"{sid}.{it.id}" not in inhibited]
        return kept, writes

    def step(state: dict[str, Any] | None, item: GroupPoint) -> tuple[dict[str, Any], list[Routed]]:
        key, record, raw = item
        group = groups[key]
        state = dict(state or {"newest": 0, "checkpoint": 0, "priority": {}})
        now = time.time()
        data = clean_record(raw, specs[key], hosts, now)
        state["newest"] = max(state["newest"], data["time"])
        if state["newest"] - data["time"] > expire_window(group.interval):
            dropped["expired"].inc()
            return state, []
        state["checkpoint"] = max(state["checkpoint"], data["time"])
        if data["value"] is None:
            dropped["no_value"].inc()
            return state, []
        status = host_status(data["dimensions"], hosts)
        if status is not HostStatus.KEEP:
            dropped[status].inc()
            return state, []
        retained = retaining(group, matchers, data["dimensions"])
        if not retained:
            dropped["out_of_range"].inc()
            return state, []
        retained, priority_writes = inhibit(state["priority"], data, retained)
        if not retained:
            dropped["inhibited"].inc()
            return state, []
        extra = (*priority_writes, *checkpoint_writes(prefix, key, state["checkpoint"], int(now)))
        if group.is_static_threshold:
            push = anomaly_push(prefix, key, group.interval, data, checks(data, retained), extra)
        else:
            targets = [(sid, it.id) for sid, it in retained]
            push = data_push(prefix, key, group.interval, data, targets, extra)
        return state, [Routed(push, record.timestamp_ms)]

    flow = Dataflow(NAME)
    records, consumer_errors = kafka_input("kafka", flow, settings, settings.topics_for(NAME), NAME)
    parsed, rejected = parse_records(
        "parse", records, Stage(NAME, "parse").per_item(point_parser(settings, NAME))
    )
    mine = shard_by_business("shard", parsed, settings, lambda item: item[1].bk_biz_id, NAME)
    keyed = op.flat_map("by_group", mine, to_groups)
    routed = op.map("routed", op.stateful_flat_map("group", keyed, step), lambda kv: kv[1])
    write_once("redis", routed, settings, NAME, "data")
    dead_letters("dlq", settings, NAME, rejected, consumer_errors)
    return flow


flow = flow_from_env(build_flow)
