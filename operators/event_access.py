"""The event flow's work on a batch of messages, apart from any stream framework.

:class:`EventAccess` takes a batch of Kafka records through decode, ``check()`` and ``flat()``,
the shard, ``full()``, the filters and ``clean()`` (:meth:`EventAccess.__call__`): anomalies
of strategies without a priority group come out as Redis writes, the others gathered per
priority group. :meth:`EventAccess.prioritise` then runs one group's anomalies of the batch
through that group's hash (bkmonitor's ``PriorityChecker``) and builds their writes; the flow
keeps each group's hash as keyed state. Every record is guarded: a record any stage fails on
becomes a :class:`~operators.rejects.Rejection` (an unexpected error as ``internal_error``
naming the stage) and the batch goes on. The Bytewax flow (``flows/event.py``) runs both once
per batch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from operators.bounds import decode_object
from operators.drops import Drop
from operators.event import (
    Decided,
    EventStrategies,
    PriorityBatch,
    access,
    by_priority_group,
    checked_records,
    inhibit,
    record_business,
)
from operators.hosts import HostIndex
from operators.rejects import Rejection, SourceRecord, messages
from state.event_writes import event_push
from state.idempotent import Push

if TYPE_CHECKING:
    from alarmflow.config import Settings

Grouped = list[tuple[SourceRecord, PriorityBatch]]
"""One priority group's anomalies of a batch, a :class:`PriorityBatch` per flat record, in the
order of the records."""
Priorities = dict[str, str]
"""One priority group's hash: dimensions md5 -> ``"priority:time"``."""


@dataclass
class Outcome:
    """What one batch gave before priority inhibition, and what was counted on the way."""

    pushes: list[tuple[Push, SourceRecord]] = field(default_factory=list)
    """The writes of the anomalies no priority group concerns, with their record."""
    grouped: dict[str, Grouped] = field(default_factory=dict)
    """Per priority group, its anomalies of the batch."""
    rejected: list[Rejection] = field(default_factory=list)
    cleaned: int = 0
    """Anomalies made (one per flat record and strategy item kept)."""
    ignored: int = 0
    """Messages of a type bkmonitor ignores."""
    other_shard: int = 0
    """Flat records of businesses another deployment owns."""
    dropped: Counter[Drop] = field(default_factory=Counter)
    """Flat records and strategy clones dropped by ``full()`` and the filters, per reason."""


@dataclass
class Prioritised:
    """What one priority group's anomalies of a batch gave."""

    pushes: list[tuple[Push, SourceRecord]] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    inhibited: int = 0


class EventAccess:
    """The event flow's per-record work, run over a batch (see the module), with the key
    prefix, dedup TTL, time window, message size limit, event language and hash-ring shard of
    ``settings``."""

    def __init__(self, settings: Settings, hosts: HostIndex, strategies: EventStrategies) -> None:
        self._hosts = hosts
        self._strategies = strategies
        self._prefix = settings.key_prefix
        self._dedup_ttl = settings.dedup_ttl
        self._window = settings.time_window()
        self._max_bytes = settings.max_message_bytes
        self._language = settings.event_language
        shard = settings.shard()
        self._owns: Callable[[object], bool] | None = None if shard is None else shard.owns

    def __call__(self, inputs: Sequence[SourceRecord | Rejection], now: float) -> Outcome:
        """Each record of the batch up to priority inhibition; ``now`` is the access time."""
        out = Outcome()
        for record in messages(inputs, out.rejected):
            try:
                message = decode_object(record, self._max_bytes)
                _, flat = checked_records(message, self._language, self._window, now)
            except Exception as exc:
                out.rejected.append(Rejection.from_exception("parse", exc, record))
                continue
            if not flat:
                out.ignored += 1
            for one in flat:
                self._access(record, one, now, out)
        return out

    def _access(self, record: SourceRecord, flat: dict, now: float, out: Outcome) -> None:
        """One flat record of ``record``: shard, ``full()``, filters, ``clean()``."""
        stage = "shard"
        try:
            if self._owns is not None and not self._owns(record_business(flat, self._hosts)):
                out.other_shard += 1
                return
            stage = "access"
            found, drops = access(
                flat, self._hosts, self._strategies, self._prefix, now, self._language
            )
            free, batches = by_priority_group(found, now)
            pushes = [self._push(d, record) for d in free]
        except Exception as exc:
            out.rejected.append(Rejection.from_exception(stage, exc, record))
            return
        if drops:
            out.dropped.update(drops)
        out.cleaned += len(found)
        out.pushes += pushes
        for batch in batches:
            out.grouped.setdefault(batch.group, []).append((record, batch))

    def prioritise(
        self, stored: Priorities | None, grouped: Grouped
    ) -> tuple[Priorities | None, Prioritised]:
        """One priority group's anomalies of a batch through the group's hash, in order: the
        hash after them (None once it is empty) and their writes. A record that fails leaves
        the hash as it was before it."""
        out = Prioritised()
        for record, batch in grouped:
            try:
                after, decided = inhibit(stored, batch)
                pushes = [self._push(d, record) for d in decided]
            except Exception as exc:
                out.rejected.append(Rejection.from_exception("priority", exc, record))
                continue
            stored = after
            out.pushes += pushes
            out.inhibited += sum(d.inhibited for d in decided)
        return stored, out

    def _push(self, decided: Decided, record: SourceRecord) -> tuple[Push, SourceRecord]:
        return event_push(self._prefix, decided, self._dedup_ttl), record
