"""Per converge dimension state (bkmonitor's ConvergeInstance / ConvergeRelation rows and the
``fta_action.converge.*`` sorted-set index), as plain picklable data."""

from __future__ import annotations

from dataclasses import dataclass, field

from operators.converge.context import Action

PRIMARY = "primary"
EXECUTED = "executed"
SKIPPED = "skipped"
INDEX_TTL_S = 1800


@dataclass
class Converge:
    """An open converge: its id, when it opened, its relations ``{action id: role}`` and the
    alert ids of each related action."""

    id: str
    create_time: float
    dimension: str
    function: str
    biz: str
    relations: dict[int, str] = field(default_factory=dict)
    alerts: dict[int, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True, order=True)
class Timer:
    """Something to do at ``due``: ``retry`` an action (``ref`` = action id) or ``collect`` the
    summary of a converge (``ref`` = converge id)."""

    due: float
    kind: str
    ref: str


@dataclass
class DimensionState:
    """Everything one converge dimension remembers.

    ``index``: action id -> create time of the actions seen (pruned after ``INDEX_TTL_S``);
    ``statuses``: last known status of each indexed action; ``ended``: ids related to a converge
    that ended (never matched again); ``collecting``: ended converges whose summary is still
    due; ``pending``: actions waiting for a retry timer; ``attempts``: decisions made per
    action (decision ids are ``{action}.{attempt}``); ``clock``: the latest time seen.
    """

    index: dict[int, float] = field(default_factory=dict)
    statuses: dict[int, str] = field(default_factory=dict)
    ended: set[int] = field(default_factory=set)
    converge: Converge | None = None
    collecting: dict[str, Converge] = field(default_factory=dict)
    pending: dict[int, Action] = field(default_factory=dict)
    attempts: dict[int, int] = field(default_factory=dict)
    timers: list[Timer] = field(default_factory=list)
    clock: float = 0.0
    window_s: int = 0

    def executed(self, exclude: int) -> tuple[str, ...]:
        """Statuses of the open converge's executed (or primary) actions other than ``exclude``."""
        if self.converge is None:
            return ()
        return tuple(
            self.statuses.get(aid, "received")
            for aid, role in sorted(self.converge.relations.items())
            if role != SKIPPED and aid != exclude
        )

    def end(self) -> None:
        """End the open converge (bkmonitor's ``end_converge_by_id``); keep it for its summary
        if one is still due."""
        converge = self.converge
        if converge is None:
            return
        self.ended.update(converge.relations)
        self.converge = None
        if any(t.kind == "collect" and t.ref == converge.id for t in self.timers):
            self.collecting[converge.id] = converge

    def expires_at(self) -> float | None:
        """When nothing is due, the time after which no later action could match anything
        here: the last action plus the longer of the index TTL and the window."""
        if self.timers or self.pending or not self.index:
            return None
        return max(self.index.values()) + self.quiet_s()

    def quiet_s(self) -> int:
        return max(INDEX_TTL_S, self.window_s)

    def is_idle(self) -> bool:
        """Nothing open, pending or due: the state can be dropped once the index is empty."""
        return not (self.converge or self.collecting or self.pending or self.timers or self.index)
