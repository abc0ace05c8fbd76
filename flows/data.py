"""Periodic data access: Kafka metric points → TSDB rows per bucket → access → Redis.

``python -m bytewax.run flows.data``; ``docs/time-series.md`` describes it::

    kafka → parse (bounds, time window) → shard → by_group → window (keyed by strategy
    group: event-time tumbling buckets, closed as bkmonitor's query reads them) → access
    (clean, expire, host, range) → priority (keyed by priority group) → writes → redis

bkmonitor queries each strategy group's aggregated rows from its TSDB; here the rows are built
from the raw points by :mod:`operators.windows`. Every closed row is marked in the group's
dedup set, as bkmonitor marks every row it pulled before its filters run; the kept ones are
written to the data lists, or checked in access for groups whose algorithms are all
``Threshold``. Every step is guarded: a record a step fails on goes to the dead-letter topic.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream

from alarmflow.config import Settings
from alarmflow.metrics import Stage
from flows.common import flow_from_env
from flows.guard import guarded_flat_map, guarded_map, rejection
from flows.points import DropCounter, Parsed, Plans, priority_steps, source_of, time_series_flow
from flows.redis_sink import Routed
from operators.drops import Drop
from operators.rejects import Rejection
from operators.strategy_group import strategy_groups
from operators.timeseries import AccessRecord, access_record, plans_by_table, plans_for
from operators.windows import (
    AggMethod,
    Closed,
    GroupWindows,
    WindowSpec,
    WindowState,
    point_value,
    window_spec,
)
from state.data_writes import checkpoint_writes, record_push

NAME = "data"
log = logging.getLogger(__name__)
GroupPoint = tuple[str, Parsed]
"""A point for one strategy group: the group key and the parsed point."""


class WindowLogic(op.StatefulLogic[GroupPoint, Closed | Rejection, WindowState]):
    """Bytewax's side of :class:`~operators.windows.GroupWindows`: points in, closed rows
    out; the idle check on a wall-clock timer; every open bucket closed at end of input. A
    point the windows reject is a rejection; they reject before changing anything."""

    def __init__(
        self,
        specs: Mapping[str, WindowSpec],
        state: WindowState | None,
        clock: Callable[[], float],
        dropped: Callable[[Drop], None],
    ) -> None:
        self._specs, self._clock, self._dropped = specs, clock, dropped
        known = state is not None and state.key in specs
        self._windows = GroupWindows(specs[state.key], state) if known else None
        self._orphan = None if known else state
        """State of a strategy group the strategies no longer have: discarded at once."""

    def on_item(self, value: GroupPoint) -> tuple[Iterable[Closed | Rejection], bool]:
        key, (source, point) = value
        if self._windows is None:
            self._windows = GroupWindows(self._specs[key], WindowState(key))
        try:
            time_ = float(point.raw["time"])
            closed, late = self._windows.add(
                source, point.raw, point.dimensions, time_, self._clock()
            )
        except Exception as exc:
            return [rejection("window", exc, source)], self.RETAIN
        for reason in late:
            self._dropped(reason)
        return closed, self.RETAIN

    def on_notify(self) -> tuple[Iterable[Closed | Rejection], bool]:
        if self._windows is None:
            return [], self.RETAIN if self._orphan is None else self.DISCARD
        return self._windows.idle(self._clock()), self.RETAIN

    def on_eof(self) -> tuple[Iterable[Closed | Rejection], bool]:
        return ([] if self._windows is None else self._windows.flush()), self.RETAIN

    def notify_at(self) -> datetime | None:
        if self._orphan is not None:
            return datetime.now(UTC)
        due = None if self._windows is None else self._windows.idle_due()
        return None if due is None else datetime.fromtimestamp(due, UTC)

    def snapshot(self) -> WindowState:
        if self._windows is None:
            assert self._orphan is not None  # Bytewax snapshots only logic that saw a call
            return self._orphan
        return copy.deepcopy(self._windows.state)


def pipeline(
    points: Stream[Parsed],
    plans: Plans,
    prefix: str,
    lateness: int,
    clock: Callable[[], float] = time.time,
) -> tuple[Stream[Routed], list[Stream[Rejection]]]:
    """Parsed points in, the Redis pushes and the rejections out (no Kafka, no Redis)."""
    specs = {k: s for k, p in plans.plans.items() if (s := window_spec(p.group, lateness))}
    for key in plans.plans.keys() - specs.keys():
        sids = [sid for sid, _ in plans.plans[key].group.items]
        log.warning("strategies %s not served: agg_method is not one of %s", sids, list(AggMethod))
    table = plans_by_table(p for k, p in plans.plans.items() if k in specs)
    dropped = DropCounter(NAME, (Drop.LATE, Drop.NO_VALUE, Drop.OUT_OF_QUERY))

    def by_group(item: Parsed) -> list[tuple[str, GroupPoint]]:
        """The point for each group it feeds; a metric that is no number is rejected here,
        once, rather than by each group's window."""
        group_plans, drop = plans_for(item[1], table, by_metric=True)
        dropped(drop)
        for plan in group_plans:
            point_value(item[1].raw, specs[plan.group.key].metric)
        return [(p.group.key, (p.group.key, item)) for p in group_plans]

    def access(closed: Closed) -> AccessRecord:
        plan = plans.plans[closed.key]
        record = access_record(
            plan, closed.source, closed.row, plans.hosts, clock(), closed.watermark
        )
        return replace(record, checkpoint=closed.checkpoint)

    def writes(record: AccessRecord) -> Routed:
        dropped(record.drop)
        plan = plans.plans[record.group_key]
        marks = checkpoint_writes(prefix, record.group_key, record.checkpoint, int(clock()))
        push = record_push(prefix, record, plan, plan.group.is_static_threshold, marks)
        return Routed(push, record.source.timestamp_ms, record.source)

    grouped = guarded_flat_map("by_group", points, by_group, source_of)
    windowed = op.stateful(
        "window",
        grouped.oks,
        lambda state: WindowLogic(specs, state, clock, dropped),
    )
    rows = op.map("window_rows", windowed, lambda kv: kv[1])
    split = op.branch("window_split", rows, lambda row: isinstance(row, Closed))
    accessed = guarded_map(
        "access", split.trues, Stage(NAME, "access").per_item(access), lambda c: c.source
    )
    checked, priority_errs = priority_steps("priority", accessed.oks, plans.priority_depth)
    routed = guarded_map("writes", checked, writes, lambda r: r.source)
    return routed.oks, [grouped.errs, split.falses, accessed.errs, *priority_errs, routed.errs]


def build_flow(settings: Settings) -> Dataflow:
    lateness = settings.data_lateness_s
    return time_series_flow(
        NAME,
        settings,
        lambda s: strategy_groups(s).values(),
        lambda points, plans: pipeline(points, plans, settings.key_prefix, lateness),
    )


flow = flow_from_env(build_flow)
