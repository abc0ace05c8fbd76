"""Real-time data access: Kafka metric messages → standard data records → Redis.

``python -m bytewax.run flows.real_time_data``. bkmonitor.md §2.2: a message
``{result_table_id, time, dimensions, metrics}`` goes to the REAL_TIME strategies of its result
table and business, grouped by query_md5. Per group the first item makes a ``DataRecord``
grouped by its ``agg_dimension``; the CMDB fuller, expire, host-status and range filters run;
the record is LPUSHed onto ``access.data.{sid}.{iid}`` of every item that retains it and the
strategy ids are signalled on ``access.data.signal``. bkmonitor has no dedup here; alarmflow
SADDs the record id to the group's dedup set as its idempotency marker, so a replay writes
nothing twice.
"""

from __future__ import annotations

import time

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
from operators.data_filters import HostStatus, host_status, is_expired
from operators.records import Point, clean_record, record_spec
from operators.rejects import SourceRecord
from operators.strategy_group import real_time_groups
from state.data_writes import data_push

NAME = "real_time_data"


def build_flow(settings: Settings) -> Dataflow:
    prefix = settings.key_prefix
    hosts = load_hosts(settings)
    strategies = {s.id: s for s in load_strategies(settings)}
    table = real_time_groups(strategies.values())
    specs = {g.key: record_spec(g.first) for groups in table.values() for g in groups}
    matchers = item_matchers((g for groups in table.values() for g in groups), strategies)
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

    def fan_out(item: tuple[SourceRecord, Point]) -> list[Routed]:
        record, point = item
        if not point.bk_biz_id:
            dropped["no_business"].inc()
            return []
        groups = table.get((point.result_table_id, point.bk_biz_id), ())
        if not groups:
            dropped["no_strategy"].inc()
            return []
        now = time.time()
        out = []
        for group in groups:
            data = clean_record(point.raw, specs[group.key], hosts, now)
            status = host_status(data["dimensions"], hosts)
            targets = [(sid, it.id) for sid, it in retaining(group, matchers, data["dimensions"])]
            if is_expired(data["time"], now, group.interval):
                dropped["expired"].inc()
            elif status is not HostStatus.KEEP:
                dropped[status].inc()
            elif not targets:
                dropped["out_of_range"].inc()
            else:
                push = data_push(prefix, group.key, group.interval, data, targets)
                out.append(Routed(push, record.timestamp_ms))
        return out

    flow = Dataflow(NAME)
    records, consumer_errors = kafka_input("kafka", flow, settings, settings.topics_for(NAME), NAME)
    parsed, rejected = parse_records(
        "parse", records, Stage(NAME, "parse").per_item(point_parser(settings, NAME))
    )
    mine = shard_by_business("shard", parsed, settings, lambda item: item[1].bk_biz_id, NAME)
    routed = op.flat_map("records", mine, fan_out)
    write_once("redis", routed, settings, NAME, "data")
    dead_letters("dlq", settings, NAME, rejected, consumer_errors)
    return flow


flow = flow_from_env(build_flow)
