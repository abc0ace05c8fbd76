"""Incident access: Kafka → parse → per-incident document (Bytewax state) → Redis.

``python -m bytewax.run flows.incident``. bkmonitor takes incident sync messages from
RabbitMQ and writes Elasticsearch; alarmflow takes the same messages from Kafka (keyed by
incident id, so one incident's messages stay in order) and keeps the document, its alert links
and its status history in Redis (bkmonitor.md §2.5).
"""

from __future__ import annotations

import bytewax.operators as op
from bytewax.dataflow import Dataflow

from alarmflow.config import Settings
from alarmflow.metrics import CLEANED, DROPPED, Stage
from flows.common import (
    dead_letters,
    flow_from_env,
    parse_records,
    shard_by_business,
    write_once,
)
from flows.kafka_io import kafka_input
from flows.redis_sink import Routed
from operators.bounds import decode_object
from operators.incident import IncidentState, Sync, fold, is_experience_stage, parse_sync
from operators.rejects import SourceRecord
from state.writes import incident_push

NAME = "incident"


def build_flow(settings: Settings) -> Dataflow:
    prefix = settings.key_prefix
    dedup_ttl = settings.dedup_ttl
    parsed_count = CLEANED.labels(NAME)
    stage_count = DROPPED.labels(NAME, "experience_stage")
    duplicate_count = DROPPED.labels(NAME, "duplicate")

    def parse(record: SourceRecord, _now: float) -> Sync:
        sync = parse_sync(decode_object(record, settings.max_message_bytes))
        parsed_count.inc()
        return sync

    def changes_a_document(item: tuple[SourceRecord, Sync]) -> bool:
        if is_experience_stage(item[1]):
            stage_count.inc()
            return False
        return True

    def step(
        state: IncidentState | None, item: tuple[SourceRecord, Sync]
    ) -> tuple[IncidentState | None, list[Routed]]:
        record, sync = item
        state, change = fold(state, sync)
        if change is None:
            duplicate_count.inc()
            return state, []
        return state, [
            Routed(incident_push(prefix, sync.uid, change, dedup_ttl), record.timestamp_ms)
        ]

    flow = Dataflow(NAME)
    records, consumer_errors = kafka_input("kafka", flow, settings, settings.topics_for(NAME), NAME)
    parsed, rejected = parse_records("parse", records, Stage(NAME, "parse").per_item(parse))
    live = op.filter("stage", parsed, changes_a_document)
    mine = shard_by_business("shard", live, settings, lambda item: item[1].info["bk_biz_id"], NAME)
    keyed = op.key_on("by_incident", mine, lambda item: item[1].incident_id)
    routed = op.map("routed", op.stateful_flat_map("document", keyed, step), lambda kv: kv[1])
    write_once("redis", routed, settings, NAME, "incident")
    dead_letters("dlq", settings, NAME, rejected, consumer_errors)
    return flow


flow = flow_from_env(build_flow)
