"""One converge dimension as a state object (``converge/processor.py``) on a virtual clock.

:class:`Dimension` holds what bkmonitor keeps in its converge index, ConvergeInstance and
ConvergeRelation rows for one dimension, and its methods change it in place and return the
decisions made: :meth:`Dimension.push` fires the timers due by the action's event time, then
decides the action; :meth:`Dimension.advance` fires the timers due by a time; at end of input
:meth:`Dimension.flush` fires them all. An action is decided as bkmonitor's ``run_converge``
does, in its order:

1. an action already seen only updates its status; a finished one is not converged;
2. it is indexed at first sight (``fta_action/utils.py`` indexes before converging), so a
   shielded action, or one waiting for the lock, counts for the others;
3. a ``sleep`` retry past ``max(timeout, max_timedelta)`` is skipped (``is_sleep_timeout``);
4. shields (:mod:`operators.converge.shields`): ``shield``, or ``skipped`` when the strategy
   is gone; unconverged configs execute;
5. the counter lock (``processor.lock``): busy re-queues the action ``LOCK_RETRY_S`` later,
   status unchanged (no sleep timeout); at end of input the lock is not asked
   (:meth:`Dimension.flush`: it is decided as when the other holder's lock frees, 60 s at
   most);
6. the window closes lazily, a converge opens when the matching actions reach ``count``,
   the converge function decides, and the action is related (sleepers once decided).

``collect`` summaries come ``COLLECT_DELAY_S`` after a collecting converge opened and list
every related action that was skipped, its opener included (``collect/processor.py``).
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from operators.converge.config import ConvergeConfig
from operators.converge.context import END_STATUS, Action
from operators.converge.functions import COLLECTING, FUNCTIONS, View
from operators.converge.records import (
    EXECUTED,
    PRIMARY,
    SKIPPED,
    Converge,
    Decision,
    Plan,
    Timer,
    Verdict,
)
from operators.converge.shields import NO_SHIELDS, ShieldTable

SLEEP_RETRY_S = 30
LOCK_RETRY_S = 3
COLLECT_DELAY_S = 60
INDEX_TTL_S = 1800
NOT_YET_RUN = frozenset({"received", "sleep", "waiting"})
RUN_STATUS = {
    Verdict.EXECUTE: "running",
    Verdict.SKIPPED: "skipped",
    Verdict.SLEEP: "sleep",
    Verdict.WAITING: "waiting",
    Verdict.SHIELD: "shield",
}


class Lock(Protocol):
    """bkmonitor's counter lock on a converge dimension (``processor.lock``)."""

    def acquire(self, dimension: str, parallel: int) -> bool: ...

    def release(self, dimension: str) -> None: ...


class NoLock:
    """Inside one deployment a dimension is one worker's keyed state: nothing to lock."""

    def acquire(self, dimension: str, parallel: int) -> bool:
        return True

    def release(self, dimension: str) -> None:
        return None


NO_LOCK = NoLock()


class Runtime(NamedTuple):
    """What a dimension asks outside itself: the counter lock and the shield table."""

    lock: Lock = NO_LOCK
    shields: ShieldTable = NO_SHIELDS


DEFAULT = Runtime()


class Queued(NamedTuple):
    """An action waiting for a retry timer (sleep or busy lock), with its plan."""

    action: Action
    plan: Plan


@dataclass
class Dimension:
    """Everything one converge dimension remembers.

    ``index``: action id -> create time of the actions seen (pruned after ``INDEX_TTL_S``);
    ``statuses``: last known status of each indexed action; ``ended``: ids related to a converge
    that ended (never matched again); ``collecting``: ended converges whose summary is still
    due; ``queued``: actions waiting for a retry timer; ``attempts``: decisions made per action
    (decision ids are ``{action}.{attempt}``); ``timers``: a heap (:mod:`heapq`), the next due
    first; ``clock``: the latest event time seen; ``by_time``: the index's ``(create time,
    action id)`` as a heap, so that pruning takes only what expired (a busy dimension's cost per
    action so does not grow with its index); ``held``: expired entries kept because their
    action waits for a retry (a dict: smaller than a set), put back on ``by_time`` when it
    leaves the queue; ``newest``: the latest create time indexed, which is the index's largest
    while it holds any (pruning takes only entries older than an action just indexed), kept so
    that the key's expiry is not a walk of its index after every batch.
    """

    index: dict[int, float] = field(default_factory=dict)
    statuses: dict[int, str] = field(default_factory=dict)
    ended: set[int] = field(default_factory=set)
    converge: Converge | None = None
    collecting: dict[str, Converge] = field(default_factory=dict)
    queued: dict[int, Queued] = field(default_factory=dict)
    attempts: dict[int, int] = field(default_factory=dict)
    timers: list[Timer] = field(default_factory=list)
    clock: float = 0.0
    window_s: int = 0
    by_time: list[tuple[float, int]] = field(default_factory=list)
    held: dict[int, None] = field(default_factory=dict)
    newest: float = -math.inf

    def push(self, action: Action, plan: Plan, runtime: Runtime = DEFAULT) -> list[Decision]:
        """Fire the timers due by the action's event time, then decide the action."""
        out = self.advance(action.create_time, runtime)
        self.clock = max(self.clock, action.create_time)
        if action.id in self.statuses:
            if action.id not in self.queued:
                self.statuses[action.id] = action.status
            return out
        if action.status in END_STATUS:
            return out
        if plan.config is not None:
            self._index(action)
        return out + self._run(action, plan, action.create_time, runtime, retry=False)

    def advance(self, now: float, runtime: Runtime = DEFAULT) -> list[Decision]:
        """Fire, in due order, every timer due by ``now`` (and the timers they set)."""
        out: list[Decision] = []
        while self.timers and self.timers[0].due <= now:
            timer = heapq.heappop(self.timers)
            self.clock = max(self.clock, timer.due)
            if timer.kind == "retry":
                queued = self._unqueue(int(timer.ref))
                out += self._run(queued.action, queued.plan, timer.due, runtime, retry=True)
            else:
                out += self._collect(timer.ref, timer.due)
        return out

    def flush(self, shields: ShieldTable = NO_SHIELDS) -> list[Decision]:
        """End of input: fire every timer, without the lock (step 5 of the module doc)."""
        return self.advance(math.inf, Runtime(NO_LOCK, shields))

    def copy(self) -> Dimension:
        """An independent copy (the state to restore when a step fails on a record). Each
        container's own ``copy()``: ``dict(d)`` takes the slow path for a dict that ever lost an
        entry, as a busy dimension's do with every action; ``d.copy()`` clones a dict at most a
        third of whose slots were emptied (one copied not long ago) whole."""
        return Dimension(
            index=self.index.copy(),
            statuses=self.statuses.copy(),
            ended=self.ended.copy(),
            converge=self.converge and self.converge.copy(),
            collecting={k: c.copy() for k, c in self.collecting.items()},
            queued=self.queued.copy(),
            attempts=self.attempts.copy(),
            timers=self.timers.copy(),
            clock=self.clock,
            window_s=self.window_s,
            by_time=self.by_time.copy(),
            held=self.held.copy(),
            newest=self.newest,
        )

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A dimension pickled before ``by_time`` existed (a recovery store of an earlier
        version) gets it from its index, and its timers are put in heap order; one pickled
        before ``newest`` existed gets it from its index too."""
        self.__dict__.update(state)
        if "by_time" not in state:
            self.by_time = [(t, a) for a, t in self.index.items()]
            self.held = {}
            heapq.heapify(self.by_time)
            heapq.heapify(self.timers)
        if "newest" not in state:
            self.newest = max(self.index.values(), default=-math.inf)

    def drop_due(self, now: float) -> bytes:
        """Drop the timers due by ``now`` and the actions they would retry (after a timer
        failed on them); what was dropped, for the dead-letter record."""
        due = [t for t in self.timers if t.due <= now]
        self.timers = [t for t in self.timers if t.due > now]
        heapq.heapify(self.timers)
        for timer in due:
            if timer.kind == "retry" and int(timer.ref) in self.queued:
                self._unqueue(int(timer.ref))
        return ",".join(f"{t.kind}:{t.ref}" for t in due).encode()

    def next_due(self) -> float | None:
        return self.timers[0].due if self.timers else None

    def expires_at(self) -> float | None:
        """When nothing is due, the time after which no later action could match anything
        here: the last action plus the longer of the index TTL and the window."""
        if self.timers or self.queued or not self.index:
            return None
        return self.newest + max(INDEX_TTL_S, self.window_s)

    def is_idle(self) -> bool:
        """Nothing open, queued, due or indexed: nothing can refer to this state."""
        return not (self.converge or self.collecting or self.queued or self.timers or self.index)

    def executed(self, exclude: int) -> tuple[str, ...]:
        """Statuses of the open converge's executed (or primary) actions other than ``exclude``,
        in the order they were related (the converge functions count and test them, whatever
        their order)."""
        if self.converge is None:
            return ()
        statuses = self.statuses
        return tuple(
            statuses.get(aid, "received") for aid in self.converge.executing if aid != exclude
        )

    def _index(self, action: Action) -> None:
        """ZADD ``action_{id}`` with its create time; forget entries older than the TTL, unless
        their action waits for a retry (bkmonitor's trim, ``DimensionCalculator``)."""
        self.index[action.id] = action.create_time
        self.newest = max(self.newest, action.create_time)
        self.statuses[action.id] = action.status
        heapq.heappush(self.by_time, (action.create_time, action.id))
        horizon = action.create_time - INDEX_TTL_S
        while self.by_time and self.by_time[0][0] < horizon:
            t, old = heapq.heappop(self.by_time)
            if self.index.get(old) != t:
                continue
            if old in self.queued:
                self.held[old] = None
                continue
            del self.index[old]
            self.statuses.pop(old, None)
            self.attempts.pop(old, None)
            self.ended.discard(old)

    def _unqueue(self, action_id: int) -> Queued:
        """Take an action off the retry queue; an expired index entry it kept may be pruned."""
        queued = self.queued.pop(action_id)
        if action_id in self.held:
            del self.held[action_id]
            heapq.heappush(self.by_time, (self.index[action_id], action_id))
        return queued

    def _matched(self, create_time: float, window_s: int) -> list[int]:
        """Indexed actions within ``create_time ± window`` not related to an ended converge."""
        low, high = create_time - window_s, create_time + window_s
        return sorted(a for a, t in self.index.items() if low <= t <= high and a not in self.ended)

    def _end(self) -> None:
        """End the open converge (``end_converge_by_id``); keep it while its summary is due."""
        converge = self.converge
        if converge is None:
            return
        self.ended.update(converge.relations)
        self.converge = None
        if any(t.kind == "collect" and t.ref == converge.id for t in self.timers):
            self.collecting[converge.id] = converge

    def _run(
        self, action: Action, plan: Plan, now: float, runtime: Runtime, retry: bool
    ) -> list[Decision]:
        config = plan.config
        if retry and config is not None and self.statuses.get(action.id) == "sleep":
            limit = max(action.timeout, config.max_window_s)
            if int(action.create_time) + limit < int(now):
                reason = f"sleep timed out (max(timeout, max_timedelta) = {limit} s)"
                return [self._decide(action, plan, "", Verdict.SKIPPED, reason, now)]
        if not action.is_parent:
            shielded = runtime.shields.check(action, now)
            if shielded is not None:
                return [self._decide(action, plan, "", shielded.verdict, shielded.reason, now)]
        if config is None:
            return [self._decide(action, plan, "", Verdict.EXECUTE, plan.reason, now)]
        self.window_s = config.window_s
        if self.converge is not None and self.converge.create_time < action.create_time - (
            config.window_s
        ):
            self._end()
        needs_lock = self.converge is None or (
            config.count > 1 and len(self.executed(action.id)) < config.count
        )
        if needs_lock and not runtime.lock.acquire(plan.dimension, max(config.count // 2, 1)):
            self._later(action, plan, now + LOCK_RETRY_S)
            return []
        try:
            return self._converge(action, plan, config, now)
        finally:
            if needs_lock:
                runtime.lock.release(plan.dimension)

    def _converge(
        self, action: Action, plan: Plan, config: ConvergeConfig, now: float
    ) -> list[Decision]:
        hits: list[int] = []
        is_new = False
        if self.converge is None:
            hits = self._matched(action.create_time, config.window_s)
            if hits and len(hits) >= config.count:
                self.converge = Converge(
                    f"{plan.dimension}@{action.id}", now, plan.dimension, config.func, plan.biz
                )
                is_new = True
                if config.func in COLLECTING:
                    collect = Timer(now + COLLECT_DELAY_S, "collect", self.converge.id)
                    heapq.heappush(self.timers, collect)
        converge = self.converge
        if converge is None:
            reason = f"{len(hits)} matching action(s) in the window, below count {config.count}"
            return [self._decide(action, plan, "", Verdict.EXECUTE, reason, now)]
        view = View(is_new, True, self.executed(action.id), config.count)
        verdict = Verdict(FUNCTIONS[config.func](view) or Verdict.EXECUTE)
        if is_new:
            converge.relate(action.id, PRIMARY)
            for other in hits:
                if (
                    other != action.id
                    and other not in converge.relations
                    and self.statuses.get(other) not in NOT_YET_RUN
                ):
                    converge.relate(other, EXECUTED)
        elif verdict != Verdict.SLEEP:
            converge.relate(action.id, EXECUTED if verdict == Verdict.EXECUTE else SKIPPED)
        converge.alerts[action.id] = action.alert_ids
        opened = "opened the converge; " if is_new else ""
        executed = f"{len(view.executed)} other executed action(s), count {config.count}"
        reason = f"{opened}{config.func}: {verdict} ({executed})"
        made = self._decide(action, plan, converge.id, verdict, reason, now, opened=is_new)
        if verdict == Verdict.SLEEP:
            self._later(action, plan, now + SLEEP_RETRY_S)
        return [made]

    def _collect(self, converge_id: str, now: float) -> list[Decision]:
        converge = self.collecting.pop(converge_id, None)
        if converge is None and self.converge is not None and self.converge.id == converge_id:
            converge = self.converge
            self._end()
        if converge is None:
            return []
        covered = tuple(sorted(a for a in converge.relations if self.statuses.get(a) == "skipped"))
        if not covered and not converge.biz:
            return []
        alerts = tuple(sorted({alert for a in covered for alert in converge.alerts.get(a, ())}))
        return [
            Decision(
                id=f"collect.{converge_id}",
                action_id=0,
                alert_ids=alerts,
                converge_id=converge_id,
                dimension=converge.dimension,
                function=converge.function,
                decision=Verdict.COLLECT,
                reason=f"summary of the {len(covered)} related action(s) skipped",
                time=now,
                skipped=covered,
                biz=converge.biz,
            )
        ]

    def _later(self, action: Action, plan: Plan, due: float) -> None:
        self.queued[action.id] = Queued(action, plan)
        heapq.heappush(self.timers, Timer(due, "retry", str(action.id)))

    def _decide(
        self,
        action: Action,
        plan: Plan,
        converge_id: str,
        verdict: Verdict,
        reason: str,
        now: float,
        opened: bool = False,
    ) -> Decision:
        attempt = self.attempts.get(action.id, 0) + 1
        self.attempts[action.id] = attempt
        self.statuses[action.id] = RUN_STATUS[verdict]
        notice = plan.notice if verdict in (Verdict.EXECUTE, Verdict.WAITING) else None
        return Decision(
            id=f"{action.id}.{attempt}",
            action_id=action.id,
            alert_ids=action.alert_ids,
            converge_id=converge_id,
            dimension=plan.dimension,
            function=plan.config.func if plan.config else "",
            decision=verdict,
            reason=reason,
            time=now,
            biz=plan.biz,
            opened=opened,
            index=plan.index,
            create_time=action.create_time,
            notice=notice,
        )
