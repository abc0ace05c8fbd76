"""Event access: Kafka → decode, check, flat → shard → host, strategies, filters, clean →
priority inhibition per group → Redis.

``python -m bytewax.run flows.event``. GSE system events, custom string events and process
events, read from Kafka directly instead of bkmonitor's Redis relay lists. Each event record
becomes one anomaly per matching strategy item; anomalies of strategies with a priority group
pass through that group's state (bkmonitor's ``PriorityChecker``, the group hash kept as
Bytewax state and mirrored to ``access.data.priority.{group}``). Each anomaly writes its
check result, checkpoint and strategy snapshot, and, unless inhibited, its entry in
``detect.anomaly.list.{sid}.{iid}`` and the signal. Every step is guarded: a record any step
fails on goes to the dead-letter topic with its reason and the flow goes on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream

from alarmflow.config import Settings
from alarmflow.metrics import CLEANED, DROPPED, Stage
from flows.common import (
    dead_letters,
    flow_from_env,
    load_hosts,
    load_strategies,
    parse_records,
    shard_by_business,
    write_once,
)
from flows.guard import guarded_flat_map, guarded_stateful_map
from flows.kafka_io import kafka_input
from flows.redis_sink import Routed
from operators.bounds import decode_object
from operators.drops import Drop
from operators.event import (
    DROP_REASONS,
    Decided,
    EventStrategies,
    PriorityBatch,
    access,
    by_priority_group,
    checked_records,
    inhibit,
    record_business,
)
from operators.hosts import HostIndex
from operators.rejects import Rejection, SourceRecord
from operators.targets import load_dynamic_groups
from state.event_writes import event_push

NAME = "event"

Flat = tuple[SourceRecord, dict[str, Any]]
Accessed = tuple[SourceRecord, Decided | PriorityBatch]


def source(item: tuple[SourceRecord, Any]) -> SourceRecord:
    return item[0]


def pipeline(
    records: Stream[SourceRecord],
    settings: Settings,
    hosts: HostIndex,
    strategies: EventStrategies,
    clock: Callable[[], float] = time.time,
) -> tuple[Stream[Routed], list[Stream[Rejection]]]:
    """The flow's steps, from Kafka records to Redis pushes and rejections; ``clock`` is what
    the anomalies' access time and the expiry read."""
    prefix, dedup_ttl = settings.key_prefix, settings.dedup_ttl
    language, window = settings.event_language, settings.time_window()
    cleaned_count = CLEANED.labels(NAME)
    ignored_count = DROPPED.labels(NAME, Drop.IGNORED_TYPE)
    inhibited_count = DROPPED.labels(NAME, Drop.INHIBITED)
    drop_counts = {reason: DROPPED.labels(NAME, reason) for reason in DROP_REASONS}

    def parse(record: SourceRecord, now: float) -> list[dict[str, Any]]:
        message = decode_object(record, settings.max_message_bytes)
        _, flat = checked_records(message, language, window, now)
        if not flat:
            ignored_count.inc()
        return flat

    def each_record(item: tuple[SourceRecord, list[dict[str, Any]]]) -> list[Flat]:
        return [(item[0], record) for record in item[1]]

    def clean(item: Flat) -> list[Accessed]:
        found, drops = access(item[1], hosts, strategies, prefix, clock(), language)
        for reason in drops:
            drop_counts[reason].inc()
        cleaned_count.inc(len(found))
        free, batches = by_priority_group(found)
        return [(item[0], out) for out in (*free, *batches)]

    def prioritise(
        stored: dict[str, str] | None, item: tuple[SourceRecord, PriorityBatch]
    ) -> tuple[dict[str, str] | None, list[tuple[SourceRecord, Decided]]]:
        after, decided = inhibit(stored, item[1])
        inhibited_count.inc(sum(d.inhibited for d in decided))
        return after, [(item[0], d) for d in decided]

    def routed(item: tuple[SourceRecord, Decided]) -> Routed:
        return Routed(event_push(prefix, item[1], dedup_ttl), item[0].timestamp_ms, item[0])

    parsed, rejected = parse_records("parse", records, Stage(NAME, "parse").per_item(parse))
    flat = guarded_flat_map("flat", parsed, each_record, source)
    mine = shard_by_business(
        "shard", flat.oks, settings, lambda item: record_business(item[1], hosts), NAME
    )
    accessed = guarded_flat_map("access", mine, Stage(NAME, "access").per_item(clean), source)
    split = op.branch("grouped", accessed.oks, lambda item: isinstance(item[1], PriorityBatch))
    keyed = op.key_on("by_group", split.trues, lambda item: item[1].group)
    prioritised = guarded_stateful_map("priority", keyed, prioritise, source, copy_state=None)
    ungrouped = op.map("ungroup", prioritised.oks, lambda kv: kv[1])
    decided = op.merge("decided", split.falses, ungrouped)
    errs = [rejected, flat.errs, accessed.errs, prioritised.errs]
    return op.map("routed", decided, routed), errs


def build_flow(settings: Settings) -> Dataflow:
    groups = load_dynamic_groups(settings.dynamic_groups)
    strategies = EventStrategies(load_strategies(settings), groups)
    flow = Dataflow(NAME)
    records, consumer_errors = kafka_input("kafka", flow, settings, settings.topics_for(NAME), NAME)
    routed, errs = pipeline(records, settings, load_hosts(settings), strategies)
    write_once("redis", routed, settings, NAME, "anomaly")
    dead_letters("dlq", settings, NAME, *errs, consumer_errors)
    return flow


flow = flow_from_env(build_flow)
