"""What the two time-series flows share: their strategy-group plans, reading metric messages
per batch, the counters, the priority steps and the tail from access records to Redis writes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream

from alarmflow.config import Settings
from alarmflow.metrics import CLEANED, DROPPED, Stage
from flows.common import dead_letters, load_hosts, load_strategies, write_behind
from flows.kafka_io import Input, kafka_batches
from flows.redis_sink import Routed
from operators.drops import Drop
from operators.hosts import HostIndex
from operators.point_access import Outcome, PointReader, Writer, by_pending
from operators.records import record_spec
from operators.rejects import Rejection
from operators.strategy import Strategy
from operators.strategy_group import Group
from operators.timeseries import AccessRecord, GroupPlan, check_priorities

Grouping = Callable[[Iterable[Strategy]], Iterable[Group]]
"""Strategies → the strategy groups a flow serves."""
Clock = Callable[[], float]


def point_reader(settings: Settings) -> PointReader:
    """Messages within the bounds, their ``time`` within the event-time window, of the
    businesses this deployment owns on the hash ring."""
    shard = settings.shard()
    owns = None if shard is None else shard.owns
    return PointReader(settings.time_window(), settings.max_message_bytes, owns)


@dataclass(frozen=True)
class Plans:
    """A flow's strategy groups, made once at start-up, and the CMDB hosts."""

    plans: dict[str, GroupPlan]
    hosts: HostIndex

    @classmethod
    def of(cls, strategies: Iterable[Strategy], hosts: HostIndex, grouping: Grouping) -> Plans:
        by_id = {s.id: s for s in strategies}
        plans = {
            g.key: GroupPlan.of(g, by_id, record_spec(g.first)) for g in grouping(by_id.values())
        }
        return cls(plans, hosts)

    @classmethod
    def load(cls, settings: Settings, grouping: Grouping) -> Plans:
        return cls.of(load_strategies(settings), load_hosts(settings), grouping)

    @property
    def priority_depth(self) -> int:
        """The most priority groups any strategy group takes part in: how many priority
        steps a record may need."""
        return max((len(p.priority_groups) for p in self.plans.values()), default=0)


TIME_SERIES_DROPS = (
    Drop.NO_BUSINESS,
    Drop.NO_STRATEGY,
    Drop.EXPIRED,
    Drop.UNKNOWN_HOST,
    Drop.HOST_DISABLED,
    Drop.OUT_OF_RANGE,
    Drop.INHIBITED,
)
"""What either time-series flow may drop a record for (``flows.data`` adds its windows')."""


class Counts:
    """A time-series flow's counters of what a batch gave: points cleaned, and
    ``alarmflow_dropped_total{flow, reason}`` for the drop reasons (``other_shard`` only
    once a deployment on a hash ring has dropped one)."""

    def __init__(self, flow: str, extra: Iterable[Drop] = ()) -> None:
        self._flow = flow
        self._dropped = {r: DROPPED.labels(flow, r) for r in (*TIME_SERIES_DROPS, *extra)}
        self._cleaned = CLEANED.labels(flow)

    def __call__(self, out: Outcome) -> Outcome:
        if out.cleaned:
            self._cleaned.inc(out.cleaned)
        if out.other_shard:
            DROPPED.labels(self._flow, Drop.OTHER_SHARD).inc(out.other_shard)
        for reason, count in out.dropped.items():
            self._dropped[reason].inc(count)
        return out

    def drop(self, reason: Drop) -> None:
        self._dropped[reason].inc()


def priority_steps(
    step_id: str, batches: Stream[list[AccessRecord]], depth: int
) -> tuple[Stream[list[AccessRecord]], list[Stream[Rejection]]]:
    """bkmonitor's ``PriorityChecker``, one keyed step per priority group a record may take
    part in: step ``k`` holds, per priority group, its hash (Bytewax state) and checks, a batch
    at a time, the records whose ``k``-th pending group it is; the others pass it by."""
    errs = []
    for k in range(depth):
        step = f"{step_id}_{k}"

        def check(stored, records, step=step):
            after, checked, rejected = check_priorities(stored, records, step)
            return after, (checked, rejected)

        keyed = op.flat_map(f"{step}_key", batches, by_pending)
        passing = op.filter_map(
            f"{step}_passing", batches, lambda rs: [r for r in rs if not r.pending] or None
        )
        checked = op.stateful_map(step, keyed, check)
        errs.append(op.flat_map(f"{step}_errs", checked, lambda kv: kv[1][1]))
        values = op.filter_map(f"{step}_values", checked, lambda kv: kv[1][0] or None)
        batches = op.merge(f"{step}_merge", values, passing)
    return batches, errs


def access_tail(
    name: str,
    outcomes: Stream[Outcome],
    writer: Writer,
    depth: int,
    counts: Counts,
    clock: Clock = time.time,
) -> tuple[Stream[list[Routed]], list[Stream[Rejection]]]:
    """From the outcomes of the access step (counted there) to Redis writes, a list per batch,
    and rejections: the records waiting for priority groups are checked, then written, a batch
    at a time."""
    stage = Stage(name, "writes")

    def write(records: list[AccessRecord]) -> Outcome:
        with stage.batch(len(records)):
            return counts(writer.write(records, clock(), Outcome()))

    pending = op.filter_map("pending", outcomes, lambda o: o.records or None)
    checked, priority_errs = priority_steps("priority", pending, depth)
    results = op.merge("results", outcomes, op.map("writes", checked, write))
    routed = op.map(
        "routed", results, lambda o: [Routed(p, s.timestamp_ms, s) for p, s in o.pushes]
    )
    return routed, [op.flat_map("rejections", results, lambda o: o.rejected), *priority_errs]


Pipeline = Callable[
    [Stream[list[Input]], "Plans", PointReader],
    tuple[Stream[list[Routed]], list[Stream[Rejection]]],
]
"""A time-series flow's pipeline: batches of Kafka records in, Redis writes (a list per batch)
and rejections out."""


def time_series_flow(
    name: str, settings: Settings, grouping: Grouping, pipeline: Pipeline
) -> Dataflow:
    """The wiring both time-series flows share: Kafka batches in, ``pipeline``, Redis and the
    dead-letter topic out."""
    plans = Plans.load(settings, grouping)
    flow = Dataflow(name)
    topics = settings.topics_for(name)
    batches = kafka_batches("kafka", flow, settings, topics, name)
    routed, errs = pipeline(batches, plans, point_reader(settings))
    write_behind("redis", routed, settings, name, "data", topics)
    dead_letters("dlq", settings, name, *errs)
    return flow
