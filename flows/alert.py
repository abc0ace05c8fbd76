"""Alert access: Kafka → (decode, clean, time window, shard, expiry, route, build writes) per
batch → Redis lists and signals; rejections → dead-letter topic.

``python -m bytewax.run flows.alert``; ``docs/alert.md`` describes it. The work of one batch of
messages is one Bytewax step (``operators/alert_access.py``), so Bytewax's per-item cost and
the metrics are paid once per batch. Every record is guarded inside it: a record any stage fails
on goes to the dead-letter topic with its reason (an unexpected error as ``internal_error``
naming the stage) and the batch goes on.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream

from alarmflow.config import Settings
from alarmflow.metrics import CLEANED, DROPPED, Stage
from flows.common import dead_letters, flow_from_env, load_strategies, write_behind
from flows.kafka_io import Input, kafka_batches
from flows.redis_sink import Routed, routed
from operators.alert_access import AlertAccess
from operators.drops import Drop
from operators.rejects import Rejection

NAME = "alert"

Clock = Callable[[], float]


def pipeline(
    batches: Stream[list[Input]], access: AlertAccess, sharded: bool, clock: Clock = time.time
) -> tuple[Stream[list[Routed]], list[Stream[Rejection]]]:
    """Batches of Kafka records in; per batch the Redis writes of the alerts it carries, and
    the rejections of the records they could not take out. ``sharded`` counts the alerts of
    other deployments' businesses."""
    stage = Stage(NAME, "access")
    cleaned = CLEANED.labels(NAME)
    expired, unmatched = DROPPED.labels(NAME, Drop.EXPIRED), DROPPED.labels(NAME, Drop.UNMATCHED)
    other_shard = DROPPED.labels(NAME, Drop.OTHER_SHARD) if sharded else None

    def work(inputs: list[Input]) -> tuple[list[Routed], list[Rejection]]:
        with stage.batch(len(inputs)):
            out = access(inputs, clock())
            writes = routed(out.pushes)
        cleaned.inc(out.cleaned)
        expired.inc(out.expired)
        unmatched.inc(out.unmatched)
        if other_shard is not None:
            other_shard.inc(out.other_shard)
        return writes, out.rejected

    outcomes = op.map("access", batches, work)
    writes = op.map("routed", outcomes, lambda o: o[0])
    return writes, [op.flat_map("rejections", outcomes, lambda o: o[1])]


def build_flow(settings: Settings) -> Dataflow:
    access = AlertAccess.from_settings(settings, load_strategies(settings))
    flow = Dataflow(NAME)
    topics = settings.topics_for(NAME)
    batches = kafka_batches("kafka", flow, settings, topics, NAME)
    writes, rejected = pipeline(batches, access, settings.shard() is not None)
    write_behind("redis", writes, settings, NAME, NAME, topics)
    dead_letters("dlq", settings, NAME, *rejected)
    return flow


flow = flow_from_env(build_flow)
