"""The time-series flows' work on a batch, apart from any stream framework.

:class:`PointReader` decodes each metric message, checks its time against the window and keeps
it if this deployment's shard owns its business. :class:`RealTimeAccess` makes, per point, the
access record of each ``REAL_TIME`` strategy group it feeds; :class:`DataPoints` hands each
point to the windows of the strategy groups it feeds; :class:`RowAccess` makes the access
record of each closed bucket row. Records with priority groups still to check come out as
:attr:`Outcome.records` (the flows check them in keyed steps); the others, and the checked
ones given to :meth:`Writer.write`, become their Redis writes.

Every record is guarded: a record any stage fails on becomes a
:class:`~operators.rejects.Rejection` (an unexpected error as ``internal_error`` naming the
stage) and the batch goes on. The Bytewax flows (``flows/real_time_data.py``,
``flows/data.py``) run them once per batch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

from operators.bounds import TimeWindow, decode_object
from operators.drops import Drop
from operators.hosts import HostIndex
from operators.records import Point, parse_point, time_field
from operators.rejects import Rejection, SourceRecord, messages
from operators.timeseries import AccessRecord, GroupPlan, RecordMaker, plans_by_table, plans_for
from operators.windows import Closed, WindowSpec, point_value
from state.data_writes import checkpoint_writes, record_push
from state.idempotent import Push

Parsed = tuple[SourceRecord, Point]


@dataclass
class Outcome:
    """What one batch gave: records still to check for priority, writes for Redis,
    rejections, and what was counted on the way."""

    records: list[AccessRecord] = field(default_factory=list)
    """Records with priority groups still to check, in order."""
    pushes: list[tuple[Push, SourceRecord]] = field(default_factory=list)
    """Each written record's writes, with the Kafka record it came from."""
    rejected: list[Rejection] = field(default_factory=list)
    cleaned: int = 0
    other_shard: int = 0
    dropped: Counter[Drop] = field(default_factory=Counter)

    def drop(self, reason: Drop | None) -> None:
        if reason is not None:
            self.dropped[reason] += 1


class PointReader:
    """Decode, time window and shard: the metric messages of a batch as parsed points."""

    def __init__(
        self, window: TimeWindow, max_bytes: int, owns: Callable[[object], bool] | None = None
    ) -> None:
        self._window = window
        self._max_bytes = max_bytes
        self._owns = owns

    def read(self, inputs: Sequence[SourceRecord | Rejection], now: float, out: Outcome):
        """The points of ``inputs`` this deployment serves; ``out`` gets the rejections (and
        the consumer's) and the counts."""
        for record in messages(inputs, out.rejected):
            try:
                point = parse_point(decode_object(record, self._max_bytes))
                name, value = time_field(point.raw)
                self._window.check(value, now, name)
            except Exception as exc:
                out.rejected.append(Rejection.from_exception("parse", exc, record))
                continue
            out.cleaned += 1
            if self._owns is not None and not self._owns(point.bk_biz_id):
                out.other_shard += 1
                continue
            yield record, point


class Writer:
    """Each access record's Redis writes, once its priority groups are checked. ``periodic``:
    the data flow's, which marks every record (its checkpoint with it) and checks static
    thresholds in access; else the real-time flow's, which writes only what is kept or feeds
    no-data lists."""

    def __init__(self, plans: Mapping[str, GroupPlan], prefix: str, periodic: bool) -> None:
        self._plans = plans
        self._prefix = prefix
        self._periodic = periodic

    def write(self, records: Iterable[AccessRecord], now: float, out: Outcome) -> Outcome:
        for record in records:
            out.drop(record.drop)
            try:
                push = self._push(record, now)
            except Exception as exc:
                out.rejected.append(Rejection.from_exception("writes", exc, record.source))
                continue
            if push is not None:
                out.pushes.append((push, record.source))
        return out

    def _push(self, record: AccessRecord, now: float) -> Push | None:
        plan = self._plans[record.group_key]
        if self._periodic:
            marks = checkpoint_writes(self._prefix, record.group_key, record.checkpoint, int(now))
            return record_push(self._prefix, record, plan, plan.group.is_static_threshold, marks)
        if not record.kept and not record.passed_filters:
            return None
        push = record_push(self._prefix, record, plan, detect=False)
        return push if push.writes else None

    def route(self, records: Iterable[AccessRecord], now: float, out: Outcome) -> None:
        """Records with priority groups to check into ``out.records``, the others written."""
        ready = []
        for record in records:
            (out.records if record.pending else ready).append(record)
        self.write(ready, now, out)


class RealTimeAccess:
    """The real-time flow's work on a batch of messages: read, one access record per
    ``REAL_TIME`` strategy group a point feeds, and the writes of those not waiting for a
    priority check."""

    def __init__(
        self,
        reader: PointReader,
        plans: Mapping[str, GroupPlan],
        hosts: HostIndex | None,
        writer: Writer,
    ) -> None:
        self._reader = reader
        self._table = plans_by_table(plans.values())
        self._make = RecordMaker(hosts)
        self.writer = writer

    def __call__(self, inputs: Sequence[SourceRecord | Rejection], now: float) -> Outcome:
        out = Outcome()
        made: list[AccessRecord] = []
        for source, point in self._reader.read(inputs, now, out):
            try:
                group_plans, drop = plans_for(point, self._table, by_metric=False)
                out.drop(drop)
                make, raw = self._make, point.raw
                made.extend([make(p, source, raw, now, now) for p in group_plans])
            except Exception as exc:
                out.rejected.append(Rejection.from_exception("records", exc, source))
        self.writer.route(made, now, out)
        return out


@dataclass
class GroupedPoints:
    """A batch's points per strategy group, for the groups' windows."""

    groups: dict[str, list[Parsed]] = field(default_factory=dict)
    outcome: Outcome = field(default_factory=Outcome)


class DataPoints:
    """The data flow's work on a batch of messages before the windows: read, and each point
    to the strategy groups whose result table, business and metric it carries. A metric that
    is no number is rejected here, once, rather than by each group's window."""

    def __init__(
        self, reader: PointReader, plans: Mapping[str, GroupPlan], specs: Mapping[str, WindowSpec]
    ) -> None:
        self._reader = reader
        self._table = plans_by_table(p for k, p in plans.items() if k in specs)
        self._specs = specs

    def __call__(self, inputs: Sequence[SourceRecord | Rejection], now: float) -> GroupedPoints:
        grouped = GroupedPoints()
        out = grouped.outcome
        for parsed in self._reader.read(inputs, now, out):
            point = parsed[1]
            try:
                group_plans, drop = plans_for(point, self._table, by_metric=True)
                out.drop(drop)
                for plan in group_plans:
                    point_value(point.raw, self._specs[plan.group.key].metric)
            except Exception as exc:
                out.rejected.append(Rejection.from_exception("by_group", exc, parsed[0]))
                continue
            for plan in group_plans:
                grouped.groups.setdefault(plan.group.key, []).append(parsed)
        return grouped


class RowAccess:
    """The data flow's work on the rows its windows closed: the access record of each, and
    the writes of those not waiting for a priority check."""

    def __init__(
        self, plans: Mapping[str, GroupPlan], hosts: HostIndex | None, writer: Writer
    ) -> None:
        self._plans = plans
        self._make = RecordMaker(hosts)
        self.writer = writer

    def __call__(self, rows: Iterable[Closed], now: float) -> Outcome:
        out = Outcome()
        made = []
        for closed in rows:
            try:
                plan = self._plans[closed.key]
                record = self._make(plan, closed.source, closed.row, now, closed.watermark)
            except Exception as exc:
                out.rejected.append(Rejection.from_exception("access", exc, closed.source))
                continue
            made.append(replace(record, checkpoint=closed.checkpoint))
        self.writer.route(made, now, out)
        return out


def by_pending(records: Iterable[AccessRecord]) -> Iterator[tuple[str, list[AccessRecord]]]:
    """Records with a priority group still to check, per their next one, in order."""
    keyed: dict[str, list[AccessRecord]] = {}
    for record in records:
        if record.pending:
            keyed.setdefault(record.pending[0], []).append(record)
    return iter(keyed.items())
