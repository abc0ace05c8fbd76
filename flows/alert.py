"""Alert access: Kafka → parse and clean → expiry → route → Redis lists and signals.

``python -m bytewax.run flows.alert``; ``docs/alert.md`` describes it. Every step is guarded:
a record any step fails on goes to the dead-letter topic with its reason and the flow goes on.
"""

from __future__ import annotations

import time

from bytewax.dataflow import Dataflow

from alarmflow.config import Settings
from alarmflow.metrics import CLEANED, DROPPED, Stage
from flows.common import (
    dead_letters,
    flow_from_env,
    load_strategies,
    parse_records,
    shard_by_business,
    write_once,
)
from flows.guard import guarded_flat_map
from flows.kafka_io import kafka_input
from flows.redis_sink import Routed
from operators.alert import clean_alert, is_expired
from operators.bounds import decode_object
from operators.rejects import SourceRecord
from operators.routing import AlertRouter
from state.writes import alert_push

NAME = "alert"


def source(item: tuple[SourceRecord, object]) -> SourceRecord:
    return item[0]


def build_flow(settings: Settings) -> Dataflow:
    router = AlertRouter(load_strategies(settings))
    prefix = settings.key_prefix
    dedup_ttl = settings.dedup_ttl
    window = settings.time_window()
    cleaned_count = CLEANED.labels(NAME)
    expired_count = DROPPED.labels(NAME, "expired")
    unmatched_count = DROPPED.labels(NAME, "unmatched")

    def clean(record: SourceRecord, now: float) -> dict:
        event = clean_alert(decode_object(record, settings.max_message_bytes), now)
        window.check(event["time"], now, "time")
        cleaned_count.inc()
        return event

    def fresh(item: tuple[SourceRecord, dict]) -> list[tuple[SourceRecord, dict]]:
        if is_expired(item[1], time.time()):
            expired_count.inc()
            return []
        return [item]

    def route(item: tuple[SourceRecord, dict]) -> list[Routed]:
        record, event = item
        targets = router.route(event)
        if not targets:
            unmatched_count.inc()
            return []
        return [Routed(alert_push(prefix, event, targets, dedup_ttl), record.timestamp_ms)]

    flow = Dataflow(NAME)
    records, consumer_errors = kafka_input("kafka", flow, settings, settings.topics_for(NAME), NAME)
    cleaned, rejected = parse_records("clean", records, Stage(NAME, "clean").per_item(clean))
    mine = shard_by_business("shard", cleaned, settings, lambda item: item[1]["bk_biz_id"], NAME)
    fresh_only = guarded_flat_map("expiry", mine, Stage(NAME, "expiry").per_item(fresh), source)
    routed = guarded_flat_map("route", fresh_only.oks, Stage(NAME, "route").per_item(route), source)
    write_once("redis", routed.oks, settings, NAME, "alert")
    dead_letters("dlq", settings, NAME, rejected, fresh_only.errs, routed.errs, consumer_errors)
    return flow


flow = flow_from_env(build_flow)
