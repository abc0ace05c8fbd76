"""The converge layer's typed records: verdicts, plans, decisions, timers and converges."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

from operators.converge.config import ConvergeConfig
from operators.converge.context import Action
from operators.rejects import SourceRecord


class Verdict(StrEnum):
    """What a decision says (the ``decision`` field of a decision message)."""

    EXECUTE = "execute"
    """Run the action (not converged, or the converge function let it through)."""
    SKIPPED = "skipped"
    """Converged, not run (also: a sleep timed out, or the strategy is gone)."""
    SLEEP = "sleep"
    """Decided again ``SLEEP_RETRY_S`` later."""
    WAITING = "waiting"
    """Run through an approval ticket."""
    SHIELD = "shield"
    """Shielded (global shield, a shield config, the notice time range)."""
    COLLECT = "collect"
    """The summary of a converge, listing the related actions it skipped."""
    SUPPRESSED = "suppressed"
    """A per-dimension summary folded into a business summary."""


class IndexEntry(NamedTuple):
    """One of bkmonitor's converge index keys an action is written to."""

    strategy_id: int
    dimension: str
    value: str


class NoticeCollect(NamedTuple):
    """bkmonitor's notice-collect hash entry of a notice pushed to the action queue
    (``processor.push_to_action_queue``): key parts and the receiver field."""

    signal: str
    notice_way: str
    alert_ids: str
    receiver: str


@dataclass(frozen=True)
class Plan:
    """An action's effective config, converge dimension and business dimension; ``reason``
    instead of a config when the action is not converged. ``key`` is the state key: the
    dimension within the action's business (bkmonitor's index keys carry the strategy id, so
    its converges never span businesses either)."""

    key: str
    config: ConvergeConfig | None
    dimension: str
    biz: str
    reason: str = ""
    index: tuple[IndexEntry, ...] = ()
    notice: NoticeCollect | None = None


class Planned(NamedTuple):
    """An action on its way through the flow: the message it came from, and its plan."""

    source: SourceRecord
    action: Action
    plan: Plan


@dataclass(frozen=True)
class Decision:
    """What happens to one action (or, for ``collect``, the summary of one converge)."""

    id: str
    action_id: int
    alert_ids: tuple[str, ...]
    converge_id: str
    dimension: str
    function: str
    decision: Verdict
    reason: str
    time: float
    skipped: tuple[int, ...] = ()
    biz: str = ""
    opened: bool = False
    index: tuple[IndexEntry, ...] = ()
    create_time: float = 0.0
    notice: NoticeCollect | None = None

    @property
    def time_ms(self) -> int:
        return int(self.time * 1000)


@dataclass(frozen=True, order=True)
class Timer:
    """Something to do at ``due``: ``retry`` an action (``ref`` = action id) or ``collect`` the
    summary of a converge (``ref`` = converge id)."""

    due: float
    kind: str
    ref: str


PRIMARY = "primary"
EXECUTED = "executed"
SKIPPED = "skipped"


@dataclass
class Converge:
    """An open converge (bkmonitor's ConvergeInstance): its id, when it opened, its relations
    ``{action id: role}`` (ConvergeRelation) and the alert ids of each related action.

    ``executing`` holds the related actions whose role is not ``skipped``: what the converge
    functions count, kept apart so that a converge relating thousands of skipped actions is not
    walked for each action. Relations change through :meth:`relate`, which keeps it."""

    id: str
    create_time: float
    dimension: str
    function: str
    biz: str
    relations: dict[int, str] = field(default_factory=dict)
    alerts: dict[int, tuple[str, ...]] = field(default_factory=dict)
    executing: dict[int, None] = field(default_factory=dict)

    def relate(self, action_id: int, role: str) -> None:
        """Relate ``action_id`` with ``role`` (a related action's role may change)."""
        self.relations[action_id] = role
        if role == SKIPPED:
            self.executing.pop(action_id, None)
        else:
            self.executing[action_id] = None

    def copy(self) -> Converge:
        return Converge(
            self.id,
            self.create_time,
            self.dimension,
            self.function,
            self.biz,
            self.relations.copy(),
            self.alerts.copy(),
            self.executing.copy(),
        )

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A converge pickled before ``executing`` existed (a recovery store of an earlier
        version) gets it from its relations."""
        self.__dict__.update(state)
        if "executing" not in state:
            self.executing = {a: None for a, role in self.relations.items() if role != SKIPPED}
