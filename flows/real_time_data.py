"""Real-time data access: Kafka metric messages → access records → priority → Redis.

``python -m bytewax.run flows.real_time_data``; ``docs/time-series.md`` describes it::

    kafka → parse (bounds, time window) → shard → records (per REAL_TIME strategy group:
    clean, expire, host, range) → priority (keyed by priority group) → writes → redis

Every step is guarded: a record a step fails on goes to the dead-letter topic with its reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bytewax.dataflow import Dataflow, Stream

from alarmflow.config import Settings
from alarmflow.metrics import Stage
from flows.common import flow_from_env
from flows.guard import guarded_flat_map
from flows.points import DropCounter, Parsed, Plans, priority_steps, source_of, time_series_flow
from flows.redis_sink import Routed
from operators.rejects import Rejection
from operators.strategy_group import real_time_groups
from operators.timeseries import AccessRecord, access_record, plans_by_table, plans_for
from state.data_writes import record_push

NAME = "real_time_data"


def pipeline(
    points: Stream[Parsed], plans: Plans, prefix: str, clock: Callable[[], float] = time.time
) -> tuple[Stream[Routed], list[Stream[Rejection]]]:
    """Parsed points in, the Redis pushes and the rejections out (no Kafka, no Redis)."""
    table = plans_by_table(plans.plans.values())
    dropped = DropCounter(NAME)

    def records(item: Parsed) -> list[AccessRecord]:
        source, point = item
        group_plans, drop = plans_for(point, table, by_metric=False)
        dropped(drop)
        now = clock()
        return [access_record(p, source, point.raw, plans.hosts, now, now) for p in group_plans]

    def writes(record: AccessRecord) -> list[Routed]:
        dropped(record.drop)
        if not record.kept and not record.passed_filters:
            return []
        push = record_push(prefix, record, plans.plans[record.group_key], detect=False)
        if not push.writes:
            return []
        return [Routed(push, record.source.timestamp_ms, record.source)]

    made = guarded_flat_map("records", points, Stage(NAME, "records").per_item(records), source_of)
    checked, priority_errs = priority_steps("priority", made.oks, plans.priority_depth)
    routed = guarded_flat_map("writes", checked, writes, lambda r: r.source)
    return routed.oks, [made.errs, *priority_errs, routed.errs]


def build_flow(settings: Settings) -> Dataflow:
    return time_series_flow(
        NAME,
        settings,
        lambda s: real_time_groups(s).values(),
        lambda points, plans: pipeline(points, plans, settings.key_prefix),
    )


flow = flow_from_env(build_flow)
