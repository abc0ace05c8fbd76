"""The converge flow's intake of a batch of messages, apart from any stream framework.

:class:`Intake` decodes each record, parses its action (its ``create_time`` within the window),
plans it (:func:`operators.converge.plan.plan`) and keeps it if this deployment's shard owns
its business; each kept action comes out with its state key. Every record is guarded: a record
any stage fails on becomes a :class:`~operators.rejects.Rejection` (an unexpected error as
``internal_error`` naming the stage) and the batch goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from operators.bounds import TimeWindow, decode_object
from operators.converge.context import parse_action
from operators.converge.plan import plan
from operators.converge.records import Planned
from operators.rejects import Rejection, SourceRecord, messages


@dataclass
class Intake:
    """What one batch gave: the kept actions by state key, in input order, the rejections,
    and how many actions were parsed and how many belong to another deployment's shard."""

    keyed: list[tuple[str, Planned]] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    parsed: int = 0
    other_shard: int = 0


class Planner:
    """Decode, parse, plan and shard each record of a batch (see the module)."""

    def __init__(
        self,
        window: TimeWindow,
        max_bytes: int,
        owns: Callable[[object], bool] | None = None,
    ) -> None:
        self._window = window
        self._max_bytes = max_bytes
        self._owns = owns

    def __call__(self, inputs: Sequence[SourceRecord | Rejection], now: float) -> Intake:
        out = Intake()
        for record in messages(inputs, out.rejected):
            self._take(record, now, out)
        return out

    def _take(self, record: SourceRecord, now: float, out: Intake) -> None:
        """The record's action, planned and keyed into ``out`` if this shard owns it; its
        rejection, naming the stage that failed, if not."""
        stage = "parse"
        try:
            action = parse_action(decode_object(record, self._max_bytes), self._window, now)
            out.parsed += 1
            planned = Planned(record, action, plan(action))
            stage = "shard"
            mine = self._owns is None or self._owns(action.bk_biz_id)
        except Exception as exc:
            out.rejected.append(Rejection.from_exception(stage, exc, record))
            return
        if mine:
            out.keyed.append((planned.plan.key, planned))
        else:
            out.other_shard += 1
