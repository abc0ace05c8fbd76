"""What the two time-series flows share: parsing metric messages (with the event-time window),
their strategy-group plans, drop counters and the priority steps."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream

from alarmflow.config import Settings
from alarmflow.metrics import CLEANED, DROPPED, Stage
from flows.common import (
    dead_letters,
    load_hosts,
    load_strategies,
    parse_records,
    shard_by_business,
    write_once,
)
from flows.guard import guarded_stateful_map
from flows.kafka_io import kafka_input
from flows.redis_sink import Routed
from operators.bounds import decode_object
from operators.drops import Drop
from operators.hosts import HostIndex
from operators.records import Point, parse_point, record_spec
from operators.rejects import Rejection, SourceRecord
from operators.strategy import Strategy
from operators.strategy_group import Group
from operators.timeseries import AccessRecord, GroupPlan, check_priority

Parsed = tuple[SourceRecord, Point]
Grouping = Callable[[Iterable[Strategy]], Iterable[Group]]
"""Strategies → the strategy groups a flow serves."""


def source_of(item: tuple[SourceRecord, object]) -> SourceRecord:
    return item[0]


def point_parser(settings: Settings, flow: str) -> Callable[[SourceRecord, float], Point]:
    """``parse(record, now)`` for :func:`flows.common.parse_records`: the message within the
    bounds, its ``time`` within the event-time window; counts parsed points."""
    parsed_count = CLEANED.labels(flow)
    window = settings.time_window()

    def parse(record: SourceRecord, now: float) -> Point:
        point = parse_point(decode_object(record, settings.max_message_bytes))
        window.check(point.raw["time"], now, "time")
        parsed_count.inc()
        return point

    return parse


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


class DropCounter:
    """``alarmflow_dropped_total{flow, reason}`` for the time-series drop reasons."""

    def __init__(self, flow: str, extra: Iterable[Drop] = ()) -> None:
        self._counters = {r: DROPPED.labels(flow, r) for r in (*TIME_SERIES_DROPS, *extra)}

    def __call__(self, reason: Drop | None) -> None:
        if reason is not None:
            self._counters[reason].inc()


def priority_steps(
    step_id: str, records: Stream[AccessRecord], depth: int
) -> tuple[Stream[AccessRecord], list[Stream[Rejection]]]:
    """bkmonitor's ``PriorityChecker``, one keyed step per priority group a record may take
    part in: step ``k`` holds, per priority group, its hash (Bytewax state) and checks the
    records whose ``k``-th pending group it is."""

    def check(
        stored: dict[str, str] | None, record: AccessRecord
    ) -> tuple[dict[str, str], list[AccessRecord]]:
        after, checked = check_priority(stored, record)
        return after, [checked]

    errs = []
    for k in range(depth):
        step = f"{step_id}_{k}"
        branch = op.branch(f"{step}_pending", records, lambda r: bool(r.pending))
        keyed = op.key_on(f"{step}_key", branch.trues, lambda r: r.pending[0])
        checked = guarded_stateful_map(step, keyed, check, lambda r: r.source, copy_state=None)
        values = op.map(f"{step}_values", checked.oks, lambda kv: kv[1])
        records = op.merge(f"{step}_merge", values, branch.falses)
        errs.append(checked.errs)
    return records, errs


Pipeline = Callable[[Stream[Parsed], "Plans"], tuple[Stream[Routed], list[Stream[Rejection]]]]
"""A time-series flow's pipeline: parsed points of this deployment in, Redis writes and
rejections out."""


def time_series_flow(
    name: str, settings: Settings, grouping: Grouping, pipeline: Pipeline
) -> Dataflow:
    """The wiring both time-series flows share: Kafka in, parse, shard by business,
    ``pipeline``, Redis and the dead-letter topic out."""
    plans = Plans.load(settings, grouping)
    flow = Dataflow(name)
    records, consumer_errors = kafka_input("kafka", flow, settings, settings.topics_for(name), name)
    parse = Stage(name, "parse").per_item(point_parser(settings, name))
    parsed, rejected = parse_records("parse", records, parse)
    mine = shard_by_business("shard", parsed, settings, lambda item: item[1].bk_biz_id, name)
    routed, errs = pipeline(mine, plans)
    write_once("redis", routed, settings, name, "data")
    dead_letters("dlq", settings, name, rejected, *errs, consumer_errors)
    return flow
