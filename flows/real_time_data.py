"""Real-time data access: Kafka metric messages → standard data records → Redis.

``python -m bytewax.run flows.real_time_data``. bkmonitor.md §2.2: a message
``{result_table_id, time, dimensions, metrics}`` goes to the REAL_TIME strategies of its result
table and business; each strategy's first item makes a ``DataRecord`` grouped by its
``agg_dimension``; the CMDB fuller, range, host-status and expire filters run; the record is
LPUSHed onto ``access.data.{sid}.{iid}`` and the strategy id signalled on
``access.data.signal``. bkmonitor has no dedup here; alarmflow SADDs the record id to the
strategy's dedup set as its idempotency marker, so a replay writes nothing twice.
"""

from __future__ import annotations

import time

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
from operators.data_filters import HostStatus, RangeMatcher, host_status, is_expired
from operators.records import Point, clean_record, parse_point, record_spec
from operators.rejects import SourceRecord, decode_object
from operators.strategy_group import interval_of, query_md5, real_time_strategies
from state.data_writes import data_push

NAME = "real_time_data"


def build_flow(settings: Settings) -> Dataflow:
    prefix = settings.key_prefix
    hosts = load_hosts(settings)
    table = real_time_strategies(load_strategies(settings))
    targets = {
        strategy.id: (
            strategy,
            record_spec(strategy.items[0]),
            RangeMatcher.for_item(strategy.raw["items"][0]),
            query_md5(strategy.items[0], strategy.bk_biz_id) or "",
            interval_of(strategy.items[0]),
        )
        for by_biz in table.values()
        for strategies in by_biz.values()
        for strategy in strategies
    }
    parsed_count = CLEANED.labels(NAME)
    dropped = {
        reason: DROPPED.labels(NAME, reason)
        for reason in (
            "no_business",
            "no_strategy",
            "expired",
            HostStatus.UNKNOWN,
            HostStatus.DISABLED,
            "out_of_range",
        )
    }

    def parse(record: SourceRecord, _now: float) -> Point:
        point = parse_point(decode_object(record, settings.max_message_bytes))
        parsed_count.inc()
        return point

    def fan_out(item: tuple[SourceRecord, Point]) -> list[Routed]:
        record, point = item
        if not point.bk_biz_id:
            dropped["no_business"].inc()
            return []
        strategies = table.get(point.result_table_id, {}).get(point.bk_biz_id, [])
        if not strategies:
            dropped["no_strategy"].inc()
            return []
        now = time.time()
        out = []
        for strategy in strategies:
            _, spec, matcher, group_key, interval = targets[strategy.id]
            data = clean_record(point.raw, spec, hosts, now)
            status = host_status(data["dimensions"], hosts)
            if is_expired(data["time"], now, interval):
                reason = "expired"
            elif status is not HostStatus.KEEP:
                reason = str(status)
            elif not matcher.matches(data["dimensions"]):
                reason = "out_of_range"
            else:
                target = [(strategy.id, strategy.items[0].id)]
                push = data_push(prefix, group_key, interval, data, target)
                out.append(Routed(push, record.timestamp_ms))
                continue
            dropped[reason].inc()
        return out

    flow = Dataflow(NAME)
    records, consumer_errors = kafka_input("kafka", flow, settings, settings.topics_for(NAME), NAME)
    parsed, rejected = parse_records("parse", records, Stage(NAME, "parse").per_item(parse))
    routed = op.flat_map("records", parsed, fan_out)
    write_once("redis", routed, settings, NAME, "data")
    dead_letters("dlq", settings, NAME, rejected, consumer_errors)
    return flow


flow = flow_from_env(build_flow)
