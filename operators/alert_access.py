"""The alert flow's work on a batch of messages, apart from any stream framework.

:class:`AlertAccess` decodes and cleans each record, checks its time against the window, keeps
it if this deployment's shard owns its business and it has not expired, routes it and builds its
Redis writes. Every record is guarded: a record any stage fails on becomes a
:class:`~operators.rejects.Rejection` (an unexpected error as ``internal_error`` naming the
stage) and the batch goes on. The Bytewax flow (``flows/alert.py``) runs it once per batch; the
benchmark's peers (``bench/``) run the very same code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from operators.alert import clean_alert, is_expired
from operators.bounds import TimeWindow, decode_object
from operators.rejects import Rejection, SourceRecord
from operators.routing import AlertRouter
from operators.strategy import Strategy
from state.idempotent import Push
from state.writes import AlertWrites

if TYPE_CHECKING:
    from alarmflow.config import Settings


@dataclass
class Outcome:
    """What one batch gave: writes for Redis, rejections, and what was counted on the way."""

    pushes: list[tuple[Push, SourceRecord]] = field(default_factory=list)
    """Each record's writes, with the record (its Kafka timestamp for end-to-end latency, its
    message for the dead-letter topic should Redis refuse the writes)."""
    rejected: list[Rejection] = field(default_factory=list)
    cleaned: int = 0
    other_shard: int = 0
    expired: int = 0
    unmatched: int = 0


class AlertAccess:
    """The alert flow's per-record work, run over a batch (see the module)."""

    def __init__(
        self,
        router: AlertRouter,
        prefix: str,
        dedup_ttl: int,
        window: TimeWindow,
        max_bytes: int,
        owns: Callable[[object], bool] | None = None,
    ) -> None:
        self._router = router
        self._writes = AlertWrites(prefix, dedup_ttl)
        self._window = window
        self._max_bytes = max_bytes
        self._owns = owns

    @classmethod
    def from_settings(cls, settings: Settings, strategies: Iterable[Strategy]) -> AlertAccess:
        shard = settings.shard()
        return cls(
            AlertRouter(strategies),
            settings.key_prefix,
            settings.dedup_ttl,
            settings.time_window(),
            settings.max_message_bytes,
            None if shard is None else shard.owns,
        )

    def __call__(self, inputs: Sequence[SourceRecord | Rejection], now: float) -> Outcome:
        out = Outcome()
        for record in inputs:
            if isinstance(record, Rejection):
                out.rejected.append(record)
                continue
            stage = "clean"
            try:
                event = clean_alert(decode_object(record, self._max_bytes), now)
                self._window.check(event["time"], now, "time")
                out.cleaned += 1
                stage = "shard"
                if self._owns is not None and not self._owns(event["bk_biz_id"]):
                    out.other_shard += 1
                    continue
                stage = "expiry"
                if is_expired(event, now):
                    out.expired += 1
                    continue
                stage = "route"
                targets = self._router.route(event)
                if not targets:
                    out.unmatched += 1
                    continue
                push = self._writes(event, targets)
            except Exception as exc:
                out.rejected.append(Rejection.from_exception(stage, exc, record))
                continue
            out.pushes.append((push, record))
        return out
