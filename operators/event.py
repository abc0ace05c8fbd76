"""Event access after ``flat()``: host lookup and strategy fan-out (``full()``), bkmonitor's
filters in order, and ``clean()`` into the element trigger reads from
``detect.anomaly.list.{sid}.{iid}``.

:func:`access` takes one flat record to its anomalies and the reasons of every clone it
dropped. The per-type dimensions, record ids and texts follow bkmonitor's record classes
(:mod:`operators.event_dimensions`); anomaly texts are bkmonitor's own
(:mod:`operators.event_texts`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any, NamedTuple

import orjson

from operators._native import exact_bytes
from operators.bounds import EPOCH_2000, TimeWindow
from operators.conditions import ConditionSet, compile_conditions, mapping_lookup
from operators.drops import Drop
from operators.event_dimensions import (
    anomaly_message,
    clean_dimensions,
    dimension_fields,
    filter_dimensions,
    readonly_entries,
    record_dimensions,
    record_filter,
)
from operators.event_records import DISK_READONLY, flat_event, format_time, parse_time
from operators.hosts import Host, HostIndex
from operators.md5 import count_md5
from operators.md5 import md5 as md5_of
from operators.memo import remember
from operators.priority import Contender, check_records
from operators.strategy import Strategy
from operators.strategy_group import interval_of
from operators.targets import NO_GROUPS, DynamicGroups, compile_target, compiled_match
from state.keys import STRATEGY_SNAPSHOT_KEY

EXPIRE_SECONDS = 30 * 60
"""ExpireFilter: an event older than this is dropped."""
DROP_REASONS = (
    Drop.UNKNOWN_HOST,
    Drop.NO_STRATEGY,
    Drop.EXPIRED,
    Drop.HOST_DISABLED,
    Drop.OUT_OF_RANGE,
    Drop.CONDITION,
    Drop.IGNORED_FSTYPE,
    Drop.IGNORED_READONLY,
    Drop.PING_SCOPE,
)
"""Why :func:`access` drops a record or a strategy clone (the ``dropped`` metric's reasons)."""

METRIC_IDS = {
    2: "bk_monitor.agent-gse",
    3: "bk_monitor.disk-readonly-gse",
    6: "bk_monitor.disk-full-gse",
    7: "bk_monitor.corefile-gse",
    8: "bk_monitor.ping-gse",
    9: "bk_monitor.oom-gse",
    100: "bk_monitor.gse_custom_event",
    101: "bk_monitor.gse_process_event",
}
"""Each record class's ``METRIC_ID``: a strategy takes the events its first item names."""


class EventAnomaly(NamedTuple):
    """One cleaned event record for one strategy item, with what its writes need. (A named
    tuple, as the other per-anomaly values here: one is made per anomaly.)"""

    strategy: Strategy
    item_id: int
    level: int
    target_ip: str
    dimension_md5: str
    event_time: int
    anomaly_id: str
    record_digest: str
    """md5 of the flat record (sorted JSON): what makes a record's writes happen once. Two
    different events can share an anomaly id (same host and second); both are kept, as
    bkmonitor keeps them."""
    element: Mapping[str, Any]
    """The ANOMALY_LIST element: ``{data, anomaly, strategy_snapshot_key}``."""
    contender: Contender | None = None
    """The item's part in priority inhibition; None when its strategy has no priority group."""


class EventStrategy(NamedTuple):
    """An event strategy with what its anomalies need of its first item, worked out once."""

    strategy: Strategy
    item_id: int
    level: int
    priority: int
    conditions: ConditionSet
    """The first query config's ``agg_condition``."""
    target: Any
    """The first item's ``target``, compiled."""
    contender: Contender | None
    update_time: int
    """The strategy's ``update_time``, which names its snapshot."""

    def in_target(self, dims: Mapping[str, Any]) -> bool:
        """``RangeFilter``: the first item's ``target`` keeps ``dims``."""
        return compiled_match(self.target, dims)


class EventStrategies:
    """The event strategies (first query config ``(bk_monitor, event)``) by business and by
    the metric id of their first item, highest priority first, with each first item's target
    and conditions compiled once."""

    def __init__(self, strategies: Iterable[Strategy], groups: DynamicGroups = NO_GROUPS) -> None:
        self._by: dict[tuple[int, str], list[EventStrategy]] = {}
        for strategy in strategies:
            if strategy.source() != ("bk_monitor", "event"):
                continue
            item = strategy.items[0]
            one = EventStrategy(
                strategy,
                item.id,
                item.level(),
                strategy.number("priority"),
                compile_conditions(item.query_configs[0].get("agg_condition")),
                compile_target(item.target, groups),
                contender_of(strategy),
                strategy.number("update_time"),
            )
            for metric in item.metric_ids():
                self._by.setdefault((strategy.bk_biz_id, metric), []).append(one)
        for found in self._by.values():
            found.sort(key=lambda s: s.priority, reverse=True)

    def __len__(self) -> int:
        return len({s.strategy.id for group in self._by.values() for s in group})

    def matching(self, bk_biz_id: int, kind: int) -> list[EventStrategy]:
        """The strategies of the business for the record type, highest priority first (in
        file order among equals: ``check_records`` sorts event records so, stably)."""
        return self._by.get((bk_biz_id, METRIC_IDS[kind]), [])


def contender_of(strategy: Strategy) -> Contender | None:
    """``PriorityChecker.check_records``: items whose strategy has a ``priority`` (not None)
    and a ``priority_group_key`` take part."""
    raw = strategy.raw
    if raw.get("priority") is None or not raw.get("priority_group_key"):
        return None
    item = strategy.items[0]
    return Contender(
        f"{strategy.id}.{item.id}",
        strategy.number("priority"),
        str(raw["priority_group_key"]),
        interval_of(item),
    )


def find_host(record: Mapping[str, Any], hosts: HostIndex) -> Host | None:
    """``get_host``: by agent id (a ``"cloud:ip"`` one split into address), else by
    ``(_host_, _cloudid_)``."""
    agent_id = record.get("_agent_id_")
    if agent_id and isinstance(agent_id, str):
        if ":" in agent_id:
            cloud, _, ip = agent_id.partition(":")
            return hosts.by_address(ip, cloud)
        return hosts.by_agent(agent_id)
    return hosts.by_address(record.get("_host_"), record.get("_cloudid_") or 0)


def record_business(record: Mapping[str, Any], hosts: HostIndex) -> object:
    """The business a record belongs to: its host's, else the ``_bizid_`` it names (a record
    of an unknown host is dropped by whichever deployment owns that)."""
    host = find_host(record, hosts)
    return record.get("_bizid_") if host is None else host.bk_biz_id


def host_dimensions(record: Mapping[str, Any], host: Host) -> dict[str, Any]:
    """``full()``'s dimensions: the record's own (process events), the agent version, then
    target ip, cloud, host id and, when the host has topology, its topo nodes."""
    dims: dict[str, Any] = dict(record.get("dimensions") or {})
    if "_agent_id_" in record:
        agent_id = record["_agent_id_"]
        dims["agent_version"] = "v2" if agent_id and ":" not in str(agent_id) else "v1"
    dims["bk_target_ip"] = host.ip
    dims["bk_target_cloud_id"] = host.cloud_id
    dims["bk_host_id"] = host.bk_host_id
    if host.topo_nodes:
        dims["bk_topo_node"] = list(host.topo_nodes)
    return dims


class CleanRecord(NamedTuple):
    """What ``clean()`` writes alike for every strategy a record is fanned out to."""

    data: Mapping[str, Any]
    """The element's ``data``: time, value(s), dimensions, record id, dimension fields."""
    message: Any
    """The anomaly text (the record's title, else its class's text)."""
    dimension_md5: str
    event_time: int
    target_ip: str
    digest: str


_MD5S_KEPT = 8192
_md5s: dict[bytes, str] = {}
_PLAIN_JSON = (
    orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)
"""Without a ``default``, these make orjson refuse what it would otherwise write as JSON."""


def dimensions_md5(dims: Mapping[str, Any]) -> str:
    """``count_md5(dims)``, remembered by the dimensions' JSON: a series' dimensions recur from
    record to record. Dimensions that are not plain JSON (a datetime, a dataclass, a subclass
    of a JSON type, a key that is no string) or hold a null (which NaN would also read as) are
    digested afresh. (Event dimensions are JSON-decoded values and the host table's; an enum or
    a UUID, which orjson writes as its value, never occurs in them.)"""
    try:
        memo = orjson.dumps(dims, option=_PLAIN_JSON)
    except TypeError:
        return count_md5(dims)
    if b"null" in memo:
        return count_md5(dims)
    found = _md5s.get(memo)
    if found is None:
        found = remember(_md5s, exact_bytes(memo), count_md5(dims), _MD5S_KEPT)
    return found


def clean_record(
    record: Mapping[str, Any],
    dims: Mapping[str, Any],
    filtered: Mapping[str, Any],
    event_time: int,
    language: str,
) -> CleanRecord:
    """``clean_data`` and the anomaly text of one record: ``data.dimensions`` first, then the
    record id from the dimensions as ``clean_dimensions`` left them."""
    md5 = dimensions_md5(record_dimensions(record, dims, filtered))
    value = record.get("_title_", "")
    data = {
        "time": event_time,
        "value": value,
        "values": {"time": event_time, "value": value},
        "dimensions": clean_dimensions(record, dims, filtered),
        "record_id": f"{md5}.{event_time}",
        "dimension_fields": dimension_fields(record["_type_"], dims),
    }
    digest = md5_of(orjson.dumps(record, option=orjson.OPT_SORT_KEYS)).hexdigest()
    message = anomaly_message(record, language)
    return CleanRecord(data, message, md5, event_time, str(dims["bk_target_ip"]), digest)


@lru_cache(maxsize=4096)
def _snapshot_key(prefix: str, strategy_id: int, update_time: int) -> str:
    return STRATEGY_SNAPSHOT_KEY.key(prefix, strategy_id=strategy_id, update_time=update_time)


def clean(cleaned: CleanRecord, event: EventStrategy, prefix: str, now: float) -> EventAnomaly:
    """bkmonitor's ``clean()`` of a record fanned out to ``event`` (its first item)."""
    strategy, item_id, level = event.strategy, event.item_id, event.level
    anomaly_id = f"{cleaned.dimension_md5}.{cleaned.event_time}.{strategy.id}.{item_id}.{level}"
    element = {
        "data": cleaned.data,
        "anomaly": {
            str(level): {
                "anomaly_id": anomaly_id,
                "anomaly_time": format_time(int(now)),
                "anomaly_message": cleaned.message,
            }
        },
        "strategy_snapshot_key": _snapshot_key(prefix, strategy.id, event.update_time),
    }
    return EventAnomaly(
        strategy,
        item_id,
        level,
        cleaned.target_ip,
        cleaned.dimension_md5,
        cleaned.event_time,
        anomaly_id,
        cleaned.digest,
        element,
        event.contender,
    )


def access(
    record: Mapping[str, Any],
    hosts: HostIndex,
    strategies: EventStrategies,
    prefix: str,
    now: float,
    language: str = "zh",
) -> tuple[list[EventAnomaly], list[Drop]]:
    """One flat record: ``full()``, the filters in bkmonitor's order, ``clean()``.

    Returns the anomalies, highest strategy priority first (``check_records`` sorts event
    records so), and one drop reason per record or strategy clone that was dropped.
    """
    host = find_host(record, hosts)
    if host is None:
        return [], [Drop.UNKNOWN_HOST]
    matching = strategies.matching(host.bk_biz_id, record["_type_"])
    if not matching:
        return [], [Drop.NO_STRATEGY]
    dims = host_dimensions(record, host)
    filtered = filter_dimensions(record, dims)
    if record["_type_"] == DISK_READONLY:
        extra = {**record["_extra_"], "ro": readonly_entries(record["_extra_"])}
        record = {**record, "_extra_": extra} if extra["ro"] else record
    event_time = parse_time(record["_time_"])
    if event_time < now - EXPIRE_SECONDS:
        return [], [Drop.EXPIRED] * len(matching)
    if host.ignore_monitoring:
        return [], [Drop.HOST_DISABLED] * len(matching)
    anomalies: list[EventAnomaly] = []
    drops: list[Drop] = []
    lookup = mapping_lookup(filtered)
    unfiltered, reason = True, None
    cleaned = None
    for event in matching:
        if not event.in_target(dims):
            drops.append(Drop.OUT_OF_RANGE)
            continue
        if not event.conditions.matches(lookup):
            drops.append(Drop.CONDITION)
            continue
        if unfiltered:  # the record's own filter reads the record alone: run it once
            unfiltered, reason = False, record_filter(record, host, hosts)
        if reason is not None:
            drops.append(reason)
        else:
            cleaned = cleaned or clean_record(record, dims, filtered, event_time, language)
            anomalies.append(clean(cleaned, event, prefix, now))
    return anomalies, drops


def checked_records(
    message: Mapping[str, Any], language: str, window: TimeWindow, now: float
) -> tuple[int, list[dict[str, Any]]]:
    """``flat_event`` with each record's time checked: a time older than the expiry (and not
    before 2000) is left for :func:`access` to drop as ``expired``, as bkmonitor's
    ``ExpireFilter`` does; any other time outside ``window`` (milliseconds, future, before
    2000) is :class:`Rejected` with its reason."""
    kind, records = flat_event(message, language)
    for record in records:
        moment = parse_time(record["_time_"])
        if not EPOCH_2000 <= moment < now - EXPIRE_SECONDS:
            window.check(moment, now, "_time_")
    return kind, records


class Decided(NamedTuple):
    """An anomaly after priority inhibition, and the group-hash fields its writes set."""

    anomaly: EventAnomaly
    inhibited: bool = False
    claims: tuple[tuple[str, str], ...] = ()
    """``(dimensions md5, "priority:time")`` HSETs of ``access.data.priority.{group}``."""
    drops: tuple[tuple[str, str], ...] = ()
    """``(dimensions md5, "priority:time")`` of the expired claims the group's sync deleted:
    HDEL each unless claimed again since."""


class PriorityBatch(NamedTuple):
    """The anomalies of one flat record whose strategies share a priority group, highest
    priority first, the interval bkmonitor's ``sync_priority`` uses for the batch (that of
    the record's first, highest-priority, anomaly), and the clock its claims are stamped and
    expired with: the record's event time, never later than the wall clock at access (the
    time window takes events up to an hour ahead; one must not expire the group's claims)."""

    group: str
    anomalies: tuple[EventAnomaly, ...]
    sync_interval: int
    clock: int


def by_priority_group(
    anomalies: list[EventAnomaly], now: float
) -> tuple[list[Decided], list[PriorityBatch]]:
    """Split a record's anomalies (highest priority first), accessed at ``now``, into those no
    priority group concerns, which pass as they are, and one batch per group."""
    free = [Decided(a) for a in anomalies if a.contender is None]
    groups: dict[str, list[EventAnomaly]] = {}
    for a in anomalies:
        if a.contender is not None:
            groups.setdefault(a.contender.group, []).append(a)
    if not groups:
        return free, []
    sync = interval_of(anomalies[0].strategy.items[0])
    clock = min(anomalies[0].event_time, int(now))
    return free, [PriorityBatch(g, tuple(found), sync, clock) for g, found in groups.items()]


def inhibit(
    stored: Mapping[str, str] | None, batch: PriorityBatch
) -> tuple[dict[str, str] | None, list[Decided]]:
    """``PriorityChecker.check_records`` and ``sync_priority`` for one batch, on the batch's
    clock: the group's next hash (None once it is empty) and each anomaly's decision; the
    first anomaly's writes carry the batch's claims and deletions."""
    before = dict(stored or {})
    now = batch.clock
    records = [(a.dimension_md5, [a.contender]) for a in batch.anomalies if a.contender]
    outcome = check_records({batch.group: before}, records, now, batch.sync_interval)
    after = outcome.hashes_after({batch.group: before}).get(batch.group, before)
    updates = outcome.updates.get(batch.group, {})
    claims = tuple(updates.items())
    held = {**before, **updates}
    drops = tuple((md5, held[md5]) for md5 in outcome.deletes.get(batch.group, ()))
    decided = [
        Decided(a, a.contender.key in inhibited, claims if i == 0 else (), drops if i == 0 else ())
        for i, (a, inhibited) in enumerate(zip(batch.anomalies, outcome.inhibited, strict=True))
        if a.contender
    ]
    return after or None, decided
