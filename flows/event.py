"""Event access: Kafka → decode, check, flat → host, strategies, filters, clean → Redis.

``python -m bytewax.run flows.event``. GSE system events, custom string events and process
events (bkmonitor.md §2.3), read from Kafka directly instead of bkmonitor's Redis relay
lists. Each event record becomes one anomaly per matching strategy item, pushed to
``detect.anomaly.list.{sid}.{iid}`` with its check-result, checkpoint and strategy snapshot.
"""

from __future__ import annotations

import time
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow

from alarmflow.config import Settings
from alarmflow.metrics import CLEANED, DROPPED, Stage
from flows.common import (
    dead_letters,
    flow_from_env,
    load_hosts,
    load_strategies,
    parse_records,
    write_once,
)
from flows.kafka_io import kafka_input
from flows.redis_sink import Routed
from operators.bounds import decode_object
from operators.event import DROP_REASONS, EventStrategies, access_message
from operators.event_records import flat_event
from operators.rejects import SourceRecord
from state.event_writes import event_push

NAME = "event"


def build_flow(settings: Settings) -> Dataflow:
    hosts = load_hosts(settings)
    strategies = EventStrategies(load_strategies(settings))
    prefix = settings.key_prefix
    dedup_ttl = settings.dedup_ttl
    cleaned_count = CLEANED.labels(NAME)
    ignored_count = DROPPED.labels(NAME, "ignored_type")
    drop_counts = {reason: DROPPED.labels(NAME, reason) for reason in DROP_REASONS}

    def parse(record: SourceRecord, _now: float) -> list[dict[str, Any]]:
        _, records = flat_event(decode_object(record, settings.max_message_bytes))
        if not records:
            ignored_count.inc()
        return records

    def anomalies(item: tuple[SourceRecord, list[dict[str, Any]]]) -> list[Routed]:
        record, flat = item
        found, drops = access_message(flat, hosts, strategies, prefix, time.time())
        for reason in drops:
            drop_counts[reason].inc()
        cleaned_count.inc(len(found))
        return [Routed(event_push(prefix, a, dedup_ttl), record.timestamp_ms) for a in found]

    flow = Dataflow(NAME)
    records, consumer_errors = kafka_input("kafka", flow, settings, settings.topics_for(NAME), NAME)
    parsed, rejected = parse_records("parse", records, Stage(NAME, "parse").per_item(parse))
    routed = op.flat_map("access", parsed, Stage(NAME, "access").per_item(anomalies))
    write_once("redis", routed, settings, NAME, "anomaly")
    dead_letters("dlq", settings, NAME, rejected, consumer_errors)
    return flow


flow = flow_from_env(build_flow)
