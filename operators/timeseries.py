"""The access steps both time-series flows share once a point is a record of a strategy group:
clean, filter, range and priority, as pure functions over a :class:`GroupPlan`.

bkmonitor's ``BaseAccessDataProcess`` (``access/data/processor.py``) runs, per record: the
``TopoNodeFuller``, then ``RangeFilter`` (per item ``is_retains``), ``ExpireFilter`` and
``HostStatusFilter`` (``access/data/filters.py``); an expired record or one of an unknown host
is gone, one of a host whose monitoring is off is kept but retained by no item; then
``PriorityChecker.check_records`` (``access/priority.py``) inhibits items; then ``push`` writes
each item's retained, uninhibited records, the no-data lists of every item whose no-data
detection is on (every record that passed the filters, retained or not) and the noise-reduce
zsets of items whose notice has noise reduction on.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from operators.data_filters import HostStatus, RangeMatcher, host_status, is_expired
from operators.drops import Drop
from operators.hosts import HostIndex
from operators.md5 import count_md5
from operators.priority import DELETE_INTERVALS, Contender, PriorityChecker, parse_entry
from operators.records import Point, RecordSpec, clean_record, record_dimensions, series_key
from operators.rejects import Rejection, SourceRecord
from operators.strategy import Item, Strategy
from operators.strategy_group import Group, interval_of


@dataclass(frozen=True)
class Member:
    """One item of a strategy group, with what access needs of its strategy."""

    strategy: Strategy
    item: Item
    matcher: RangeMatcher
    interval: int
    """``Strategy.get_interval``: the item's smallest ``agg_interval`` (60 when unset)."""
    priority: int | None
    priority_group: str
    no_data: bool
    """``item.no_data_config.is_enabled``."""
    noise_dimensions: tuple[str, ...] | None
    """``notice.options.noise_reduce_config.dimensions`` when it is enabled."""

    @cached_property
    def key(self) -> str:
        return f"{self.strategy.id}.{self.item.id}"

    @classmethod
    def of(cls, strategy: Strategy, item: Item) -> Member:
        raw = strategy.raw
        raw_item = (raw.get("items") or [{}])[0]
        no_data = raw_item.get("no_data_config") or {}
        notice = raw.get("notice") or {}
        noise = (notice.get("options") or {}).get("noise_reduce_config") or {}
        priority = raw.get("priority")
        return cls(
            strategy,
            item,
            RangeMatcher.for_item(raw_item),
            interval_of(item),
            None if priority is None else int(priority),
            str(raw.get("priority_group_key") or ""),
            bool(no_data.get("is_enabled")),
            tuple(noise.get("dimensions") or ()) if noise.get("is_enabled") else None,
        )

    @cached_property
    def contender(self) -> Contender | None:
        """This item in priority inhibition; None when its strategy takes no part."""
        if self.priority is None or not self.priority_group:
            return None
        return Contender(self.key, self.priority, self.priority_group, self.interval)


@dataclass(frozen=True)
class GroupPlan:
    """What access needs of one strategy group, made once at start-up."""

    group: Group
    spec: RecordSpec
    members: tuple[Member, ...]

    @classmethod
    def of(cls, group: Group, strategies: Mapping[int, Strategy], spec: RecordSpec) -> GroupPlan:
        return cls(group, spec, tuple(Member.of(strategies[sid], it) for sid, it in group.items))

    @cached_property
    def expire_interval(self) -> int:
        """``ExpireFilter`` reads ``record.items[0].query_configs[0]["agg_interval"]``."""
        first = self.group.first.query_configs
        return int((first[0].get("agg_interval") if first else 0) or 60)

    @cached_property
    def priority_groups(self) -> tuple[str, ...]:
        """The priority groups this group's items take part in."""
        groups = (m.contender for m in self.members)
        return tuple(dict.fromkeys(c.group for c in groups if c is not None))

    @cached_property
    def sync_interval(self) -> int:
        """The interval ``sync_priority`` deletes with: the first item's."""
        return self.members[0].interval

    @cached_property
    def no_data(self) -> bool:
        """Whether any item's no-data detection is on."""
        return any(m.no_data for m in self.members)

    @cached_property
    def noise(self) -> bool:
        """Whether any item's strategy reduces noise."""
        return any(m.noise_dimensions is not None for m in self.members)

    def kept_members(self, keys: tuple[str, ...]) -> tuple[Member, ...]:
        """The members of ``keys`` (a record's kept items), in their order."""
        found = self._kept.get(keys)
        if found is None:
            by_key = {m.key: m for m in self.members}
            found = self._kept[keys] = tuple(by_key[key] for key in keys)
        return found

    @cached_property
    def _kept(self) -> dict[tuple[str, ...], tuple[Member, ...]]:
        """:meth:`kept_members` remembered: a group has few combinations of kept items."""
        return {}


@dataclass(slots=True)
class AccessRecord:
    """A standard data record of one strategy group and what access decided for it. Small
    and plain: it crosses workers between the flows' keyed steps. Never changed once made
    (:func:`dataclasses.replace` makes the next one); not frozen, as a frozen dataclass of
    this many fields takes several times as long to build, once per record."""

    source: SourceRecord
    group_key: str
    data: dict[str, Any]
    sync_interval: int
    """The interval ``sync_priority`` deletes with (the group's first item's)."""
    retained: tuple[str, ...] = ()
    """``"{strategy_id}.{item_id}"`` of the items whose range keeps the record."""
    contenders: tuple[Contender, ...] = ()
    drop: Drop | None = None
    pending: tuple[str, ...] = ()
    """Priority groups still to check, in order."""
    inhibited: frozenset[str] = frozenset()
    priority_updates: tuple[tuple[str, str, str], ...] = ()
    """``(priority group, dimensions md5, "priority:time")`` to HSET."""
    priority_drops: tuple[tuple[str, str, str], ...] = ()
    """``(priority group, dimensions md5, "priority:time")`` of the claims its sync deleted
    (``sync_priority``'s HDEL): HDEL each unless claimed again since."""
    checkpoint: int = 0
    """Periodic access: the group's checkpoint once this record is written."""

    @property
    def md5(self) -> str:
        return str(self.data["record_id"]).split(".")[0]

    @property
    def kept(self) -> tuple[str, ...]:
        """The items the record is written for: retained and not inhibited."""
        if not self.inhibited:
            return self.retained
        return tuple(key for key in self.retained if key not in self.inhibited)

    @property
    def passed_filters(self) -> bool:
        """Not removed by ``ExpireFilter`` or ``HostStatusFilter`` (an unknown host): the
        no-data lists get it."""
        return self.drop not in (Drop.EXPIRED, Drop.UNKNOWN_HOST)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What ``HostStatusFilter`` and ``RangeFilter`` decide from a record's dimensions alone:
    why it is dropped, else the items that retain it and their contenders."""

    drop: Drop | None
    retained: tuple[str, ...] = ()
    contenders: tuple[Contender, ...] = ()


def filter_verdict(
    plan: GroupPlan, dimensions: Mapping[str, Any], hosts: HostIndex | None
) -> Verdict:
    status = host_status(dimensions, hosts) if hosts is not None else HostStatus.KEEP
    if status is HostStatus.UNKNOWN:
        return Verdict(Drop.UNKNOWN_HOST)
    if status is HostStatus.DISABLED:
        return Verdict(Drop.HOST_DISABLED)
    retained = tuple(m for m in plan.members if m.matcher.matches(dimensions))
    if not retained:
        return Verdict(Drop.OUT_OF_RANGE)
    contenders = tuple(m.contender for m in retained if m.contender is not None)
    return Verdict(None, tuple(m.key for m in retained), contenders)


EXPIRED = Verdict(Drop.EXPIRED)
"""``ExpireFilter`` removed the record (before the other filters run)."""
SERIES_KEPT = 65_536
"""How many series :class:`RecordMaker` remembers (all are forgotten when it is full)."""


class RecordMaker:
    """:func:`access_record`, with what a series' dimensions decide (the record's dimensions
    and the filters' verdict, see :func:`~operators.records.series_key`) made once per series
    and remembered, up to :data:`SERIES_KEPT` series."""

    def __init__(self, hosts: HostIndex | None) -> None:
        self._hosts = hosts
        self._series: dict[tuple, list] = {}

    def __call__(
        self,
        plan: GroupPlan,
        source: SourceRecord,
        raw: Mapping[str, Any],
        now: float,
        clock: float,
    ) -> AccessRecord:
        hosts, spec = self._hosts, plan.spec
        key = series_key(raw, spec)
        if key is None:
            series = [record_dimensions(raw, spec, hosts), None]
        else:
            key = (plan.group.key, key)
            series = self._series.get(key)
            if series is None:
                if len(self._series) >= SERIES_KEPT:
                    self._series.clear()
                series = self._series[key] = [record_dimensions(raw, spec, hosts), None]
        data = clean_record(raw, spec, hosts, now, series[0])
        if is_expired(data["time"], clock, plan.expire_interval):
            verdict = EXPIRED
        else:
            verdict = series[1]
            if verdict is None:
                verdict = series[1] = filter_verdict(plan, data["dimensions"], hosts)
        return AccessRecord(
            source,
            plan.group.key,
            data,
            plan.sync_interval,
            verdict.retained,
            verdict.contenders,
            verdict.drop,
            plan.priority_groups,
        )


def access_record(
    plan: GroupPlan,
    source: SourceRecord,
    raw: Mapping[str, Any],
    hosts: HostIndex | None,
    now: float,
    clock: float,
) -> AccessRecord:
    """Clean ``raw`` into the standard record (``now`` is its ``access_time``) and run the
    filters; ``clock`` is the time ``ExpireFilter`` compares with."""
    return RecordMaker(hosts)(plan, source, raw, now, clock)


def inhibited_if_none_kept(record: AccessRecord) -> AccessRecord:
    """A record whose retained items are all inhibited is dropped as ``inhibited``."""
    if record.drop is None and not record.kept:
        return replace(record, drop=Drop.INHIBITED)
    return record


class PriorityHash:
    """One priority group's hash (Bytewax state) checked record after record: bkmonitor's
    ``PriorityChecker`` for each record, then ``sync_priority``. The claims are also kept in a
    heap by time, so that a sync deletes what expired without reading the whole hash."""

    def __init__(self, stored: Mapping[str, str] | None) -> None:
        self._checker = PriorityChecker(stored or {})
        self._by_time = [(_claim_time(raw), md5) for md5, raw in self.fields.items()]
        heapq.heapify(self._by_time)

    @property
    def fields(self) -> dict[str, str]:
        """The hash as it stands: dimensions md5 → ``"priority:time"``."""
        return self._checker.cache

    def check(self, record: AccessRecord) -> AccessRecord:
        """The record's check against its next pending priority group, this hash. The clock
        is the record's data time, never later than its ``access_time`` (the wall clock when
        access made it), so a point from the future cannot hold a claim, and never earlier
        than the series' claim: bkmonitor's clock (``time.time()``) never goes back, so a
        record that arrives after a newer one of its series is checked at the claim's time,
        and the claims a run leaves do not depend on how partitions interleave. Every record
        of a strategy group walks all the group's priority groups (a record without
        contenders in one passes it unchanged), so a group's records stay in order from
        worker to worker. A record the check fails on leaves the hash as it was."""
        group, rest = record.pending[0], record.pending[1:]
        contenders = sorted(
            (c for c in record.contenders if c.group == group),
            key=lambda c: c.priority,
            reverse=True,
        )
        updates: tuple[tuple[str, str, str], ...] = ()
        drops: tuple[tuple[str, str, str], ...] = ()
        inhibited = record.inhibited
        if contenders:
            md5, checker = record.md5, self._checker
            clock = min(record.data["time"], record.data["access_time"])
            held = parse_entry(checker.cache.get(md5))
            if held is not None and held[1] > clock:
                clock = int(held[1]) if held[1].is_integer() else held[1]
            prior, checker.updates = checker.cache.get(md5), {}
            try:
                out = [
                    c.key
                    for c in contenders
                    if checker.is_inhibited(md5, c.priority, c.interval, clock)
                ]
            except Exception:
                if prior is None:
                    checker.cache.pop(md5, None)
                else:
                    checker.cache[md5] = prior
                raise
            for claimed, entry in checker.updates.items():
                heapq.heappush(self._by_time, (_claim_time(entry), claimed))
                updates += ((group, claimed, entry),)
            inhibited = inhibited | frozenset(out)
            drops = tuple((group, md5, raw) for md5, raw in self._sync(record.sync_interval, clock))
        checked = replace(
            record,
            pending=rest,
            inhibited=inhibited,
            priority_updates=record.priority_updates + updates,
            priority_drops=record.priority_drops + drops,
        )
        return checked if rest else inhibited_if_none_kept(checked)

    def _sync(self, interval: int, now: float) -> list[tuple[str, str]]:
        """``sync_priority``: delete the claims older than ``10 x interval`` (and any that
        cannot be read); the ``(md5, value)`` of each claim deleted."""
        by_time, cache = self._by_time, self._checker.cache
        deleted = []
        while by_time and by_time[0][0] + interval * DELETE_INTERVALS < now:
            at, md5 = heapq.heappop(by_time)
            if md5 in cache:
                raw = cache[md5]
                entry = parse_entry(raw)
                if entry is None or entry[1] == at:
                    del cache[md5]
                    deleted.append((md5, raw))
        return deleted


def _claim_time(raw: str) -> float:
    """When a hash value was claimed; an unreadable one as long ago (the next sync deletes
    it)."""
    entry = parse_entry(raw)
    return -math.inf if entry is None else entry[1]


def check_priority(
    stored: Mapping[str, str] | None, record: AccessRecord
) -> tuple[dict[str, str], AccessRecord]:
    """:meth:`PriorityHash.check` of one record: the hash after it and the checked record."""
    hash_ = PriorityHash(stored)
    checked = hash_.check(record)
    return hash_.fields, checked


def check_priorities(
    stored: Mapping[str, str] | None, records: Iterable[AccessRecord], step: str
) -> tuple[dict[str, str], list[AccessRecord], list[Rejection]]:
    """:meth:`PriorityHash.check` of records of one priority group, in order: the hash after
    them, the checked records, and a rejection (by ``step``) of each record the check fails
    on, which leaves the hash as it was."""
    hash_ = PriorityHash(stored)
    checked, rejected = [], []
    for record in records:
        try:
            checked.append(hash_.check(record))
        except Exception as exc:
            rejected.append(Rejection.from_exception(step, exc, record.source))
    return hash_.fields, checked, rejected


def noise_member(dimensions: Mapping[str, Any], names: Sequence[str]) -> str:
    """``_push_noise_data``: the zset member of a record, the md5 of its values of the noise
    dimensions (None where it has none)."""
    return count_md5({name: dimensions.get(name) for name in names})


def noise_key_hash(names: Iterable[str]) -> str:
    """``_push_noise_data``: ``noise_dimension_hash``, the md5 of the dimension list."""
    return count_md5(list(names))


def plans_by_table(plans: Iterable[GroupPlan]) -> dict[tuple[str, int], list[GroupPlan]]:
    """Plans indexed by the ``(result_table_id, bk_biz_id)`` their query reads."""
    table: dict[tuple[str, int], list[GroupPlan]] = {}
    for plan in plans:
        rt = str(plan.group.query.get("result_table_id") or "")
        table.setdefault((rt, plan.group.bk_biz_id), []).append(plan)
    return table


def plans_for(
    point: Point, table: Mapping[tuple[str, int], Sequence[GroupPlan]], by_metric: bool
) -> tuple[Sequence[GroupPlan], Drop | None]:
    """The strategy groups a point feeds: those reading its result table for its business
    (and, with ``by_metric``, whose metric it carries); else why it feeds none."""
    if not point.bk_biz_id:
        return [], Drop.NO_BUSINESS
    found = table.get((point.result_table_id, point.bk_biz_id), ())
    if by_metric:
        raw = point.raw
        found = [p for p in found if str(p.group.query.get("metric_field") or "") in raw]
    return found, None if found else Drop.NO_STRATEGY
