"""Periodic data access: Kafka metric points → TSDB rows per bucket → access → Redis.

``python -m bytewax.run flows.data``; ``docs/time-series.md`` describes it::

    kafka (batches) → points (per batch: decode, bounds, time window, shard, by strategy
    group) → window (keyed by strategy group, a batch's points at a time: event-time
    tumbling buckets, closed as bkmonitor's query reads them) → access (per closed batch:
    clean, expire, host, range; writes) → priority (keyed by priority group) → writes → redis

bkmonitor queries each strategy group's aggregated rows from its TSDB; here the rows are built
from the raw points by :mod:`operators.windows`. Every closed row is marked in the group's
dedup set, as bkmonitor marks every row it pulled before its filters run; the kept ones are
written to the data lists, or checked in access for groups whose algorithms are all
``Threshold``. The per-record work is in ``operators/point_access.py``, run once per batch;
every record is guarded: a record a step fails on goes to the dead-letter topic.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream

from alarmflow.config import Settings
from alarmflow.metrics import Stage
from flows.common import flow_from_env
from flows.guard import rejection
from flows.kafka_io import Input
from flows.points import Clock, Counts, Plans, access_tail, time_series_flow
from flows.redis_sink import Routed
from operators.drops import Drop
from operators.point_access import (
    DataPoints,
    GroupedPoints,
    Outcome,
    Parsed,
    PointReader,
    RowAccess,
    Writer,
)
from operators.rejects import Rejection
from operators.strategy_group import strategy_groups
from operators.windows import (
    AggMethod,
    Closed,
    Closing,
    GroupWindows,
    Unclosed,
    WindowSpec,
    WindowState,
    window_spec,
)

NAME = "data"
log = logging.getLogger(__name__)
GroupPoints = tuple[str, list[Parsed]]
"""A batch's points for one strategy group: the group key and the parsed points."""
Rows = tuple[list[Closed], list[Rejection]]
"""What the windows gave: the rows they closed and the points they rejected."""


class WindowLogic(op.StatefulLogic[GroupPoints, Rows, WindowState]):
    """Bytewax's side of :class:`~operators.windows.GroupWindows`: a batch's points in, the
    closed rows out; the idle check on a wall-clock timer; every open bucket closed at end of
    input. A point the windows reject is a rejection; they reject before changing anything. A
    bucket they could not close is a rejection of its newest point's record."""

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

    def on_item(self, value: GroupPoints) -> tuple[Iterable[Rows], bool]:
        key, points = value
        if self._windows is None:
            self._windows = GroupWindows(self._specs[key], WindowState(key))
        now = self._clock()
        closing: Closing = []
        rejected: list[Rejection] = []
        for source, point in points:
            try:
                time_ = float(point.raw["time"])
                more, late = self._windows.add(source, point.raw, point.dimensions, time_, now)
            except Exception as exc:
                rejected.append(rejection("window", exc, source))
                continue
            closing.extend(more)
            for reason in late:
                self._dropped(reason)
        closed, unclosed = rows_of(closing)
        return [(closed, rejected + unclosed)], self.RETAIN

    def on_notify(self) -> tuple[Iterable[Rows], bool]:
        if self._windows is None:
            return [], self.RETAIN if self._orphan is None else self.DISCARD
        return [rows_of(self._windows.idle(self._clock()))], self.RETAIN

    def on_eof(self) -> tuple[Iterable[Rows], bool]:
        return ([] if self._windows is None else [rows_of(self._windows.flush())]), self.RETAIN

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


def rows_of(closing: Closing) -> Rows:
    """The rows the windows closed, and a rejection per bucket they could not close."""
    closed: list[Closed] = []
    rejected: list[Rejection] = []
    for bucket in closing:
        if isinstance(bucket, Unclosed):
            rejected.append(rejection("window", bucket.error, bucket.source))
        else:
            closed.append(bucket)
    return closed, rejected


def pipeline(
    batches: Stream[list[Input]],
    plans: Plans,
    reader: PointReader,
    prefix: str,
    lateness: int,
    clock: Clock = time.time,
) -> tuple[Stream[list[Routed]], list[Stream[Rejection]]]:
    """Batches of Kafka records in; out, a list of Redis pushes for the rows the windows
    closed on each batch (or timer, or end of input), and the rejections. No Kafka, no
    Redis."""
    specs = {k: s for k, p in plans.plans.items() if (s := window_spec(p.group, lateness))}
    for key in plans.plans.keys() - specs.keys():
        sids = [sid for sid, _ in plans.plans[key].group.items]
        log.warning("strategies %s not served: agg_method is not one of %s", sids, list(AggMethod))
    counts = Counts(NAME, (Drop.LATE, Drop.NO_VALUE, Drop.OUT_OF_QUERY))
    points = DataPoints(reader, plans.plans, specs)
    writer = Writer(plans.plans, prefix, periodic=True)
    access = RowAccess(plans.plans, plans.hosts, writer)
    point_stage, access_stage = Stage(NAME, "points"), Stage(NAME, "access")

    def read(inputs: list[Input]) -> GroupedPoints:
        with point_stage.batch(len(inputs)):
            grouped = points(inputs, clock())
        counts(grouped.outcome)
        return grouped

    def rows(keyed: tuple[str, Rows]) -> Outcome:
        closed, rejected = keyed[1]
        with access_stage.batch(len(closed)):
            out = counts(access(closed, clock()))
        out.rejected.extend(rejected)
        return out

    grouped = op.map("points", batches, read)
    keyed = op.flat_map(
        "by_group", grouped, lambda g: [(key, (key, found)) for key, found in g.groups.items()]
    )
    windowed = op.stateful(
        "window", keyed, lambda state: WindowLogic(specs, state, clock, counts.drop)
    )
    outcomes = op.map("access", windowed, rows)
    routed, errs = access_tail(NAME, outcomes, writer, plans.priority_depth, counts, clock)
    return routed, [op.flat_map("points_errs", grouped, lambda g: g.outcome.rejected), *errs]


def build_flow(settings: Settings) -> Dataflow:
    lateness = settings.data_lateness_s
    return time_series_flow(
        NAME,
        settings,
        lambda s: strategy_groups(s).values(),
        lambda batches, plans, reader: pipeline(
            batches, plans, reader, settings.key_prefix, lateness
        ),
    )


flow = flow_from_env(build_flow)
