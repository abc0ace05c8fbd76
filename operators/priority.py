"""Priority inhibition: bkmonitor's ``access/priority.py`` ``PriorityChecker``, pure.

Strategies that share a ``priority_group_key`` inhibit each other per series. The group's hash
``access.data.priority.{group}`` maps a series (its dimensions md5) to ``"priority:timestamp"``:
the highest priority that claimed the series and when. For each record, its contending items
(retained, strategy ``priority`` not None, ``priority_group_key`` not empty) are checked from
the highest priority down. An item is inhibited when the series has an entry that is younger
than 5 x the strategy interval and whose priority is higher than the item's own. Otherwise
the item passes and, if its priority is not 0, claims the series with ``"{priority}:{now}"``
(a priority of 0 is never stored: it is the minimum anyway). At the end of a batch the group
drops every entry older than 10 x the interval of the batch's first item, and the hash gets a
600 s TTL.

bkmonitor's code raises on an entry it cannot split into ``int:float``; here such an entry
reads as no entry, is overwritten by the next claim and deleted by the next sync.

Nothing here reads a clock: ``now`` is the caller's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from operators.memo import remember

INHIBIT_INTERVALS = 5
"""``is_inhibited``: an entry younger than ``5 x interval`` s inhibits lower priorities."""
DELETE_INTERVALS = 10
"""``sync_priority``: entries older than ``10 x interval`` s are deleted."""
HASH_TTL_S = 600
"""``ACCESS_PRIORITY_KEY.ttl`` (``10 * CONST_MINUTES``), set again at every sync."""


@dataclass(frozen=True)
class Contender:
    """One item of a record that takes part in priority inhibition."""

    key: str
    """What is inhibited, e.g. ``"{strategy_id}.{item_id}"``."""
    priority: int
    group: str
    """The strategy's ``priority_group_key``."""
    interval: int
    """The strategy's interval (``Strategy.get_interval``), in seconds."""


_ENTRIES_KEPT = 8192
"""How many hash values :func:`parse_entry` remembers: a group's entries are read again at
every record that passes the group, and a claim's value recurs across its series."""
_entries: dict[str, tuple[int, float] | None] = {}


def parse_entry(raw: str | None) -> tuple[int, float] | None:
    """A hash value ``"priority:timestamp"`` as ``(priority, timestamp)``; None when absent,
    empty or malformed. A string's entry is remembered (:func:`read_entry` reads it)."""
    if not raw:
        return None
    if type(raw) is not str:
        return read_entry(raw)
    entry = _entries.get(raw)
    if entry is None and raw not in _entries:
        entry = remember(_entries, raw, read_entry(raw), _ENTRIES_KEPT)
    return entry


def read_entry(raw: str) -> tuple[int, float] | None:
    """:func:`parse_entry` of a non-empty value, not remembered."""
    parts = raw.split(":")
    if len(parts) != 2:
        return None
    try:
        return int(parts[0]), float(parts[1])
    except ValueError:
        return None


def encode_entry(priority: int, now: float) -> str:
    """The hash value bkmonitor writes: ``f"{priority}:{now}"``."""
    return f"{priority}:{now}"


class PriorityChecker:
    """One priority group's hash for one batch: a working copy of the stored hash and the
    fields claimed in this batch."""

    def __init__(self, stored: Mapping[str, str]) -> None:
        self.cache: dict[str, str] = dict(stored)
        self.updates: dict[str, str] = {}

    def is_inhibited(self, md5: str, priority: int, interval: int, now: float) -> bool:
        """``PriorityChecker.is_inhibited`` for one item on the series ``md5``."""
        entry = parse_entry(self.cache.get(md5))
        if entry is not None:
            held, since = entry
            if not (since + interval * INHIBIT_INTERVALS < now or held <= priority):
                return True
        if priority:
            self.cache[md5] = self.updates[md5] = encode_entry(priority, now)
        return False

    def expired(self, interval: int, now: float) -> list[str]:
        """``sync_priority``'s deletions: fields older than ``10 x interval`` (and, here,
        fields that cannot be read)."""
        out = []
        span = interval * DELETE_INTERVALS
        remembered = _entries.get  # a value read before; parse_entry reads the others
        for md5, raw in self.cache.items():
            entry = remembered(raw) or parse_entry(raw)
            if entry is None or entry[1] + span < now:
                out.append(md5)
        return out


@dataclass
class PriorityOutcome:
    """What ``check_records`` decided for a batch."""

    inhibited: list[frozenset[str]]
    """Per record (in input order), the contender keys that are inhibited."""
    touched: list[str] = field(default_factory=list)
    """The groups whose hash gets ``HASH_TTL_S`` again (every group a contender named)."""
    updates: dict[str, dict[str, str]] = field(default_factory=dict)
    """Per group, the fields to HSET (``hmset(need_update)``)."""
    deletes: dict[str, list[str]] = field(default_factory=dict)
    """Per group, the fields to HDEL (``hdel(need_delete)``)."""

    def hashes_after(self, before: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, str]]:
        """Each touched group's hash once the updates and deletes are applied."""
        out: dict[str, dict[str, str]] = {}
        for group in self.updates.keys() | self.deletes.keys():
            merged = {**before.get(group, {}), **self.updates.get(group, {})}
            for md5 in self.deletes.get(group, ()):
                merged.pop(md5, None)
            out[group] = merged
        return out


def check_records(
    hashes: Mapping[str, Mapping[str, str]],
    records: Sequence[tuple[str, Sequence[Contender]]],
    now: float,
    sync_interval: int,
) -> PriorityOutcome:
    """``PriorityChecker.check_records`` then ``sync_priority`` over a batch.

    ``hashes`` holds each group's stored hash (``hgetall``; a group not given is empty);
    ``records`` are ``(dimensions md5, contenders)`` in processing order (bkmonitor sorts
    event records by strategy priority, highest first, before this; data records keep their
    order). ``sync_interval`` is the interval of the batch's first record's first item, which
    bkmonitor uses for every group's deletions.
    """
    checkers: dict[str, PriorityChecker] = {}
    inhibited = []
    for md5, contenders in records:
        out = set()
        for c in sorted(contenders, key=lambda c: c.priority, reverse=True):
            checker = checkers.get(c.group)
            if checker is None:
                checker = checkers[c.group] = PriorityChecker(hashes.get(c.group, {}))
            if checker.is_inhibited(md5, c.priority, c.interval, now):
                out.add(c.key)
        inhibited.append(frozenset(out))
    outcome = PriorityOutcome(inhibited, list(checkers))
    for group, checker in checkers.items():
        if checker.updates:
            outcome.updates[group] = checker.updates
        deletes = checker.expired(sync_interval, now)
        if deletes:
            outcome.deletes[group] = deletes
    return outcome
