"""Real-time data access: Kafka metric messages → access records → priority → Redis.

``python -m bytewax.run flows.real_time_data``; ``docs/time-series.md`` describes it::

    kafka (batches) → access (per batch: decode, bounds, time window, shard; per REAL_TIME
    strategy group: clean, expire, host, range; writes) → priority (keyed by priority group,
    a batch at a time) → writes → redis

The work of one batch of messages is one Bytewax step (``operators/point_access.py``), so
Bytewax's per-item cost and the metrics are paid once per batch. Every record is guarded inside
it: a record any stage fails on goes to the dead-letter topic with its reason and the batch goes
on.
"""

from __future__ import annotations

import time

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream

from alarmflow.config import Settings
from alarmflow.metrics import Stage
from flows.common import flow_from_env
from flows.kafka_io import Input
from flows.points import Clock, Counts, Plans, access_tail, time_series_flow
from flows.redis_sink import Routed
from operators.point_access import Outcome, PointReader, RealTimeAccess, Writer
from operators.rejects import Rejection
from operators.strategy_group import real_time_groups

NAME = "real_time_data"


def pipeline(
    batches: Stream[list[Input]],
    plans: Plans,
    reader: PointReader,
    prefix: str,
    clock: Clock = time.time,
) -> tuple[Stream[list[Routed]], list[Stream[Rejection]]]:
    """Batches of Kafka records in; out, each batch's Redis pushes as a list (those of records
    that waited for priority checks as lists of their own), and the rejections. No Kafka, no
    Redis."""
    writer = Writer(plans.plans, prefix, periodic=False)
    access = RealTimeAccess(reader, plans.plans, plans.hosts, writer)
    stage, counts = Stage(NAME, "access"), Counts(NAME)

    def work(inputs: list[Input]) -> Outcome:
        with stage.batch(len(inputs)):
            return counts(access(inputs, clock()))

    outcomes = op.map("access", batches, work)
    return access_tail(NAME, outcomes, writer, plans.priority_depth, counts, clock)


def build_flow(settings: Settings) -> Dataflow:
    return time_series_flow(
        NAME,
        settings,
        lambda s: real_time_groups(s).values(),
        lambda batches, plans, reader: pipeline(batches, plans, reader, settings.key_prefix),
    )


flow = flow_from_env(build_flow)
