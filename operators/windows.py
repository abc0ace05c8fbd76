"""Event-time tumbling windows: what bkmonitor's TSDB query returns for a strategy group.

bkmonitor's periodic data access asks the TSDB, every interval, for the group's first query:
the metric aggregated by ``agg_method`` over ``agg_interval`` buckets, grouped by
``agg_dimension``, filtered by the query's plain ``agg_condition`` (and, for ``system.disk``
and ``system.net``, the built-in device conditions), one row per (bucket, dimensions) stamped
at the bucket's start (``_time_``) with the value in ``_result_`` and the metric's column.
It queries up to ``now - ACCESS_DATA_TIME_DELAY`` (10 s), so a bucket is read once 10 s past
its end.

alarmflow builds the same rows from the raw points on Kafka. Per strategy group,
:class:`GroupWindows` keeps the values of each open (bucket, dimensions), one per point time
and series as a TSDB stores them, and a watermark: the newest point time seen, where a point
never counts for more than the wall clock at its arrival (``min(time, now)``), so a point from
the future cannot move it ahead of the clock. A bucket ``[s, s + interval)`` closes once the
watermark reaches ``s + interval + lateness``; when the group has had no point for at least
``idle_s`` of wall-clock time (the watermark then moves on with the wall clock from where the
newest point left it, never past the clock); or at the end of input. A point whose
bucket has closed is *late*: it is dropped and counted (``dropped{reason="late"}``), as
bkmonitor loses it too (its bucket was read already; a later read of the same bucket has the
same record id and is a duplicate).

:meth:`GroupWindows.add` raises :class:`~operators.rejects.Rejected` only before it changes
anything, so a rejected point leaves the group's state as it was. Closing a bucket cannot fail
on the values :meth:`~GroupWindows.add` takes (finite numbers; a sum that overflows is an
infinity, rejected later as out of range), but should it fail all the same, only that bucket
is lost: it comes out as :class:`Unclosed`, naming its newest point's record, and the other
buckets close as ever, on a point, a timer or the end of input alike.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

import orjson

from operators.bounds import finite_number
from operators.conditions import ConditionSet, mapping_lookup
from operators.data_filters import plain_conditions
from operators.drops import Drop
from operators.md5 import count_md5
from operators.records import RESULT_FIELD, number_format
from operators.rejects import SourceRecord
from operators.strategy_group import Group, interval_of

TSDB_TIME_FIELD = "_time_"


class AggMethod(StrEnum):
    """The ``agg_method`` values a window computes (bkmonitor's time-series methods)."""

    AVG = "AVG"
    SUM = "SUM"
    MIN = "MIN"
    MAX = "MAX"
    COUNT = "COUNT"


def total(values: Sequence[float]) -> float:
    """The sum of finite values, correctly rounded; an infinity when it overflows (the record
    is then rejected as out of range, not the flow stopped)."""
    try:
        return math.fsum(values)
    except OverflowError:
        return sum(values)


def aggregate(method: AggMethod, values: Sequence[float]) -> float | int:
    """The TSDB's aggregate of one bucket's values (at least one)."""
    if method is AggMethod.AVG:
        return total(values) / len(values)
    if method is AggMethod.SUM:
        return total(values)
    if method is AggMethod.MIN:
        return min(values)
    if method is AggMethod.MAX:
        return max(values)
    return len(values)


@dataclass(frozen=True)
class WindowSpec:
    """How one strategy group's points are bucketed and aggregated."""

    interval: int
    lateness: int
    idle_s: float
    method: AggMethod
    metric: str
    """The metric field read from each point."""
    alias: str
    """The column the TSDB row carries the value in (the metric's alias, else its field)."""
    group_by: tuple[str, ...] | None
    """``agg_dimension``; None when the query has none (every dimension then groups)."""
    where: ConditionSet = field(default_factory=lambda: ConditionSet(()))
    """The conditions the TSDB applies before aggregating."""


def window_spec(group: Group, lateness: int) -> WindowSpec | None:
    """The windows of a strategy group's first query config; None when its ``agg_method`` is
    not one a window computes."""
    query = group.query
    try:
        method = AggMethod(str(query.get("agg_method") or "").upper())
    except ValueError:
        return None
    metric = str(query.get("metric_field") or "")
    dims = query.get("agg_dimension")
    interval = interval_of(group.first)
    return WindowSpec(
        interval=interval,
        lateness=lateness,
        idle_s=interval + lateness,
        method=method,
        metric=metric,
        alias=str(query.get("alias") or metric),
        group_by=None if dims is None else tuple(dims),
        where=plain_conditions(query),
    )


@dataclass(slots=True)
class Bucket:
    """One open (bucket start, dimensions) window."""

    start: int
    dimensions: dict[str, Any]
    values: dict[tuple[float, str], float]
    """Per point (its time and all its dimensions) its value: a TSDB stores one value per
    series and time, the last written, so a point sent twice counts once."""
    source: SourceRecord
    """The newest point's Kafka record: a closed bucket's rejections name it."""


@dataclass(frozen=True)
class Closed:
    """A closed bucket as a TSDB row, with the Kafka record of its newest point."""

    key: str
    """The strategy group's key."""
    source: SourceRecord
    row: dict[str, Any]
    watermark: float
    """The group's watermark when the bucket closed (the clock its expiry is judged by)."""
    checkpoint: int
    """The newest bucket start the group has closed (bkmonitor's checkpoint)."""


class Unclosed(NamedTuple):
    """A bucket whose row could not be made: it is gone as a closed bucket is, and its newest
    point's record is rejected with the error."""

    source: SourceRecord
    error: Exception


Closing = list[Closed | Unclosed]
"""The buckets a call closed, oldest first."""


def point_value(raw: Mapping[str, Any], metric: str) -> float | None:
    """The point's metric as a finite number (``number_format`` first), None when absent."""
    value = raw.get(metric)
    if value is None:
        return None
    return finite_number(number_format(value), metric)


def group_dimensions(
    raw: Mapping[str, Any], dimensions: Mapping[str, Any], spec: WindowSpec
) -> dict[str, Any]:
    """The dimensions a row is grouped by: the ``agg_dimension`` fields, else all of them."""
    if spec.group_by is None:
        return dict(dimensions)
    return {name: raw.get(name) for name in spec.group_by}


@dataclass
class WindowState:
    """One strategy group's open buckets and watermark: the Bytewax state (picklable)."""

    key: str
    """The strategy group's key (Bytewax hands state back without it)."""
    watermark: float = 0.0
    last_arrival: float = 0.0
    """Wall-clock time of the newest point."""
    arrival_watermark: float = 0.0
    """The watermark as the newest point left it: idle time is added to this."""
    checkpoint: int = 0
    buckets: dict[int, dict[str, Bucket]] = field(default_factory=dict)
    """Open buckets by start, then by the md5 of their dimensions."""


class GroupWindows:
    """The windows of one strategy group: its spec (from today's strategies) over its state
    (from the recovery store)."""

    def __init__(self, spec: WindowSpec, state: WindowState) -> None:
        self.spec = spec
        self.state = state

    def add(
        self,
        source: SourceRecord,
        raw: Mapping[str, Any],
        dimensions: Mapping[str, Any],
        time: float,
        now: float,
    ) -> tuple[Closing, list[Drop]]:
        """Add one point (``time``: its checked epoch seconds; ``now``: the wall clock).
        Returns the buckets this closes and, if the point went nowhere, why."""
        spec, state = self.spec, self.state
        if not spec.where.matches(mapping_lookup(raw)):
            return [], [Drop.OUT_OF_QUERY]
        value = point_value(raw, spec.metric)
        if value is None:
            return [], [Drop.NO_VALUE]
        dims = group_dimensions(raw, dimensions, spec)
        # decode(): orjson's bytes keep their whole output buffer, about 1.4 KB each.
        point_key = (time, orjson.dumps(dict(dimensions), option=orjson.OPT_SORT_KEYS).decode())
        start, md5 = int(time) // spec.interval * spec.interval, count_md5(dims)
        state.last_arrival = max(state.last_arrival, now)
        late = self.is_closed(start)
        if not late:
            series = state.buckets.setdefault(start, {})
            bucket = series.get(md5)
            if bucket is None:
                bucket = series[md5] = Bucket(start, dims, {}, source)
            bucket.values[point_key] = value
            bucket.source = source
        closed = self._advance(min(time, now))
        state.arrival_watermark = state.watermark
        return closed, [Drop.LATE] if late else []

    def is_closed(self, start: int) -> bool:
        """A bucket starting at ``start`` is closed at the current watermark."""
        return start + self.spec.interval + self.spec.lateness <= self.state.watermark

    def idle(self, now: float) -> Closing:
        """The group had no point for at least ``idle_s``: the watermark is the one the newest
        point left plus the wall-clock time since (never past ``now``); the buckets that
        passes close."""
        state = self.state
        elapsed = now - state.last_arrival
        if elapsed < self.spec.idle_s:
            return []
        return self._advance(min(state.arrival_watermark + elapsed, now))

    def idle_due(self) -> float | None:
        """The wall-clock time at which :meth:`idle` closes the oldest open bucket (at least
        ``idle_s`` after the newest point); None when no bucket is open."""
        state = self.state
        if not state.buckets:
            return None
        target = min(state.buckets) + self.spec.interval + self.spec.lateness
        return state.last_arrival + max(self.spec.idle_s, target - state.arrival_watermark)

    def flush(self) -> Closing:
        """Close every open bucket (end of input)."""
        return self._close(list(self.state.buckets))

    def _advance(self, to: float) -> Closing:
        self.state.watermark = max(self.state.watermark, to)
        return self._close([start for start in self.state.buckets if self.is_closed(start)])

    def _close(self, starts: Sequence[int]) -> Closing:
        """Close the buckets of ``starts``, oldest first, series in md5 order."""
        out: Closing = []
        state = self.state
        for start in sorted(starts):
            series = state.buckets.pop(start)
            state.checkpoint = max(state.checkpoint, start)
            for md5 in sorted(series):
                bucket = series[md5]
                try:
                    row = self._row(bucket)
                except Exception as exc:  # a failure nobody foresaw loses this bucket only
                    out.append(Unclosed(bucket.source, exc))
                    continue
                out.append(Closed(state.key, bucket.source, row, state.watermark, state.checkpoint))
        return out

    def _row(self, bucket: Bucket) -> dict[str, Any]:
        """A bucket's TSDB row: its dimensions, the aggregate under the metric's column and
        ``_result_``, and its start as ``_time_``."""
        spec = self.spec
        value = aggregate(spec.method, list(bucket.values.values()))
        return {
            **bucket.dimensions,
            spec.alias: value,
            RESULT_FIELD: value,
            TSDB_TIME_FIELD: bucket.start,
        }
