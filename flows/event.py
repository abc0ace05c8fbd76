"""Event access: Kafka → (decode, check, flat, shard, host, strategies, filters, clean) per
batch → priority inhibition per group per batch → Redis; rejections → dead-letter topic.

``python -m bytewax.run flows.event``; ``docs/event.md`` describes it. GSE system events,
custom string events and process events, read from Kafka directly instead of bkmonitor's Redis
relay lists. The work of one batch of messages is one Bytewax step
(``operators/event_access.py``): each event record becomes one anomaly per matching strategy
item. Anomalies of strategies with a priority group then pass, one list per group and batch,
through that group's keyed state (bkmonitor's ``PriorityChecker``, the group hash kept as
Bytewax state and mirrored to ``access.data.priority.{group}``). Each anomaly writes its check
result, checkpoint and strategy snapshot, and, unless inhibited, its entry in
``detect.anomaly.list.{sid}.{iid}`` and the signal. Every record is guarded: a record any stage
fails on goes to the dead-letter topic with its reason and the batch goes on. Metrics are
counted per batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream

from alarmflow.config import Settings
from alarmflow.metrics import CLEANED, DROPPED, Stage
from flows.common import dead_letters, flow_from_env, load_hosts, load_strategies, write_behind
from flows.kafka_io import Input, kafka_batches
from flows.redis_sink import Routed, routed
from operators.drops import Drop
from operators.event import DROP_REASONS, EventStrategies
from operators.event_access import EventAccess, Grouped, Outcome, Priorities, Prioritised
from operators.rejects import Rejection
from operators.targets import load_dynamic_groups

NAME = "event"

Clock = Callable[[], float]


def pipeline(
    batches: Stream[list[Input]], access: EventAccess, sharded: bool, clock: Clock = time.time
) -> tuple[Stream[list[Routed]], list[Stream[Rejection]]]:
    """Batches of Kafka records in; per batch the Redis writes of the anomalies it carries
    (those without a priority group as one list, each group's as another), and the rejections
    of the records they could not take out. ``clock`` is what the anomalies' access time and
    the expiry read; ``sharded`` counts the records of other deployments' businesses."""
    access_stage, priority_stage = Stage(NAME, "access"), Stage(NAME, "priority")
    cleaned, ignored = CLEANED.labels(NAME), DROPPED.labels(NAME, Drop.IGNORED_TYPE)
    inhibited = DROPPED.labels(NAME, Drop.INHIBITED)
    other_shard = DROPPED.labels(NAME, Drop.OTHER_SHARD) if sharded else None
    drops = {reason: DROPPED.labels(NAME, reason) for reason in DROP_REASONS}

    def work(inputs: list[Input]) -> Outcome:
        with access_stage.batch(len(inputs)):
            out = access(inputs, clock())
        cleaned.inc(out.cleaned)
        ignored.inc(out.ignored)
        if other_shard is not None:
            other_shard.inc(out.other_shard)
        for reason, count in out.dropped.items():
            drops[reason].inc(count)
        return out

    def prioritise(
        stored: Priorities | None, grouped: Grouped
    ) -> tuple[Priorities | None, Prioritised]:
        with priority_stage.batch(len(grouped)):
            after, out = access.prioritise(stored, grouped)
        inhibited.inc(out.inhibited)
        return after, out

    outcomes = op.map("access", batches, work)
    free = op.map("free", outcomes, lambda o: routed(o.pushes))
    by_group = op.flat_map("by_group", outcomes, lambda o: list(o.grouped.items()))
    prioritised = op.stateful_map("priority", by_group, prioritise)
    decided = op.map("decided", prioritised, lambda kv: routed(kv[1].pushes))
    rejected = [
        op.flat_map("rejections", outcomes, lambda o: o.rejected),
        op.flat_map("priority_rejections", prioritised, lambda kv: kv[1].rejected),
    ]
    return op.merge("routed", free, decided), rejected


def build_flow(settings: Settings) -> Dataflow:
    groups = load_dynamic_groups(settings.dynamic_groups)
    strategies = EventStrategies(load_strategies(settings), groups)
    access = EventAccess(settings, load_hosts(settings), strategies)
    flow = Dataflow(NAME)
    topics = settings.topics_for(NAME)
    batches = kafka_batches("kafka", flow, settings, topics, NAME)
    writes, rejected = pipeline(batches, access, settings.shard() is not None)
    write_behind("redis", writes, settings, NAME, "anomaly", topics)
    dead_letters("dlq", settings, NAME, *rejected)
    return flow


flow = flow_from_env(build_flow)
