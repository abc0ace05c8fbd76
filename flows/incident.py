"""Incident access: Kafka → parse → shard → per-incident document (Bytewax state) → Redis.

``python -m bytewax.run flows.incident``. bkmonitor takes incident sync messages from
RabbitMQ and writes Elasticsearch; alarmflow takes the same messages from Kafka (keyed by
incident id, so one incident's messages stay in order) and keeps the document, its alert links
and its operation history in Redis. Every step is guarded: a record any step fails on goes to
the dead-letter topic with its reason, the incident's state as it was before it. A recovered,
closed or merged incident's state is forgotten once it has had no message for as long as Redis
keeps its document (:func:`kept_for`).
"""

from __future__ import annotations

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream

from alarmflow.config import Settings
from alarmflow.metrics import CLEANED, DROPPED, Stage
from flows.common import dead_letters, flow_from_env, parse_records, shard_by_business, write_once
from flows.guard import guarded_stateful_map
from flows.kafka_io import kafka_records
from flows.redis_sink import Routed
from operators.bounds import decode_object
from operators.drops import Drop
from operators.incident import IncidentState, Sync, fold, is_final, parse_sync
from operators.rejects import Rejection, SourceRecord
from state.keys import INCIDENT_DOC_KEY
from state.writes import incident_push

NAME = "incident"
DROP_REASONS = (Drop.EXPERIENCE_STAGE, Drop.DUPLICATE)


def source(item: tuple[SourceRecord, Sync]) -> SourceRecord:
    return item[0]


def business(item: tuple[SourceRecord, Sync]) -> object:
    return item[1].info["bk_biz_id"]


def kept_for(state: IncidentState) -> float | None:
    """How long an incident's state outlives its last message: a recovered, closed or merged
    incident's as long as Redis keeps its document (``INCIDENT_DOC_KEY``'s TTL, which each
    write sets again), an open one's for ever. The flow's state then no longer grows with
    every incident it ever saw."""
    return INCIDENT_DOC_KEY.ttl if is_final(state) else None


def pipeline(
    records: Stream[SourceRecord], settings: Settings
) -> tuple[Stream[Routed], list[Stream[Rejection]]]:
    """The flow's steps, from Kafka records to Redis pushes and rejections."""
    prefix, dedup_ttl = settings.key_prefix, settings.dedup_ttl
    parsed_count = CLEANED.labels(NAME)
    drop_counts = {reason: DROPPED.labels(NAME, reason) for reason in DROP_REASONS}

    def parse(record: SourceRecord, _now: float) -> Sync:
        sync = parse_sync(decode_object(record, settings.max_message_bytes))
        parsed_count.inc()
        return sync

    def step(
        state: IncidentState | None, item: tuple[SourceRecord, Sync]
    ) -> tuple[IncidentState | None, list[Routed]]:
        record, sync = item
        state, changes, drops = fold(state, sync)
        for reason in drops:
            drop_counts[reason].inc()
        pushes = [incident_push(prefix, sync.uid, change, dedup_ttl) for change in changes]
        return state, [Routed(push, record.timestamp_ms, record) for push in pushes]

    parsed, rejected = parse_records("parse", records, Stage(NAME, "parse").per_item(parse))
    mine = shard_by_business(
        "shard", parsed, settings, lambda item: item[1].info["bk_biz_id"], NAME
    )
    keyed = op.key_on("by_incident", mine, lambda item: item[1].incident_id)
    folded = guarded_stateful_map("document", keyed, step, source, copy_state=None, keep=kept_for)
    return op.map("routed", folded.oks, lambda kv: kv[1]), [rejected, folded.errs]


def build_flow(settings: Settings) -> Dataflow:
    flow = Dataflow(NAME)
    topics = settings.topics_for(NAME)
    records, consumer_errors = kafka_records("kafka", flow, settings, topics, NAME)
    routed, errs = pipeline(records, settings)
    write_once("redis", routed, settings, NAME, "incident")
    dead_letters("dlq", settings, NAME, *errs, consumer_errors)
    return flow


flow = flow_from_env(build_flow)
