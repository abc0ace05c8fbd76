"""One converge step per action and per timer (bkmonitor.md §5.5), on a virtual clock.

``decide(state, action, now)`` first fires the dimension's timers that are due by ``now`` (the
event time), then decides the action; ``on_timer(state, timer, now)`` fires one timer. Both
return the new state, the decisions made and the timers they set. Decisions:

- ``execute``: run the action (not converged, or the function let it through);
- ``skipped``: converged, not run; ``waiting``: run through an approval ticket;
- ``sleep``: decided again ``SLEEP_RETRY_S`` later (the action is kept in the state);
- ``collect``: the summary of a converge, ``COLLECT_DELAY_S`` after it opened, listing every
  action the converge skipped (none when it skipped nothing; for business converges an empty
  one goes to the business step, which owes it to its window and drops it).

A busy counter lock (§5.4) re-queues the action ``LOCK_RETRY_S`` later without a decision.
Shields (§5.5 step 1) are out of scope: a shielded action never reaches this layer here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from operators.converge.config import ConvergeConfig, normalise
from operators.converge.context import END_STATUS, Action, converge_context
from operators.converge.dimension import biz_dimension, dimension
from operators.converge.functions import COLLECTING, FUNCTIONS, View
from operators.converge.state import EXECUTED, PRIMARY, SKIPPED, Converge, DimensionState, Timer
from operators.converge.window import close_if_stale, index, matched

COMPARED = ("alert_info", "notice_info", "action_info")
"""The context fields bkmonitor indexes in ``fta_action.converge.{sid}.{dim}.{value}``."""
SLEEP_RETRY_S = 30
LOCK_RETRY_S = 3
COLLECT_DELAY_S = 60
LOCK_TTL_S = 60
NOT_YET_RUN = frozenset({"received", "sleep", "waiting"})
RUN_STATUS = {
    "execute": "running",
    "skipped": "skipped",
    "sleep": "sleep",
    "waiting": "waiting",
    "shield": "shield",
}


@dataclass(frozen=True)
class Decision:
    """What happens to one action (or, for ``collect``, the summary of one converge)."""

    id: str
    action_id: int
    alert_ids: tuple[str, ...]
    converge_id: str
    dimension: str
    function: str
    decision: str
    reason: str
    time: float
    skipped: tuple[int, ...] = ()
    biz: str = ""
    opened: bool = False
    index: tuple[tuple[int, str, str], ...] = ()
    create_time: float = 0.0


class Lock(Protocol):
    """bkmonitor's counter lock on a converge dimension (§5.4)."""

    def acquire(self, dimension: str, parallel: int) -> bool: ...

    def release(self, dimension: str) -> None: ...


class NoLock:
    """Inside one deployment a dimension is one worker's keyed state: nothing to lock."""

    def acquire(self, dimension: str, parallel: int) -> bool:
        return True

    def release(self, dimension: str) -> None:
        return None


NO_LOCK = NoLock()


@dataclass(frozen=True)
class Plan:
    """An action's effective config, converge dimension and business dimension; ``reason``
    instead of a config when the action is not converged."""

    config: ConvergeConfig | None
    dimension: str
    biz: str
    reason: str = ""
    index: tuple[tuple[int, str, str], ...] = ()


def plan(action: Action) -> Plan:
    """The action's converge dimension (the flow keys by it); unconverged actions get
    ``"!none#{id}"`` so that each is its own key."""
    context = converge_context(action)
    config = normalise(action, context)
    if isinstance(config, str):
        return Plan(None, f"!none#{action.id}", "", config)
    biz = biz_dimension(context) if config.need_biz_converge else ""
    index = tuple((action.strategy_id, dim, str(context[dim])) for dim in COMPARED)
    return Plan(config, dimension(config, context), biz, index=index)


Step = tuple[DimensionState, list[Decision], list[Timer]]


def decide(
    state: DimensionState,
    action: Action,
    now: float,
    lock: Lock = NO_LOCK,
    planned: Plan | None = None,
) -> Step:
    """Fire the timers due by ``now``, then decide ``action``; ``planned`` is its
    :func:`plan` when the caller already made it (to key the action by its dimension)."""
    state, decisions, timers = fire_due(state, now, lock)
    state.clock = max(state.clock, now)
    if action.id in state.statuses:
        if action.id not in state.pending:
            state.statuses[action.id] = action.status
        return state, decisions, timers
    if action.status in END_STATUS:
        return state, decisions, timers
    made, set_timers = _process(state, action, planned or plan(action), now, lock, retry=False)
    return state, decisions + made, timers + set_timers


def fire_due(state: DimensionState, now: float, lock: Lock = NO_LOCK) -> Step:
    """Fire, in due order, every timer due by ``now`` (and timers they set that are due)."""
    decisions: list[Decision] = []
    timers: list[Timer] = []
    while state.timers and min(state.timers).due <= now:
        timer = min(state.timers)
        state, made, set_timers = on_timer(state, timer, timer.due, lock)
        decisions += made
        timers += set_timers
    return state, decisions, [t for t in timers if t in state.timers]


def on_timer(state: DimensionState, timer: Timer, now: float, lock: Lock = NO_LOCK) -> Step:
    """Fire ``timer`` at ``now``: retry a pending action or emit a converge's summary."""
    state.timers.remove(timer)
    state.clock = max(state.clock, now)
    if timer.kind == "retry":
        action = state.pending.pop(int(timer.ref))
        made, timers = _process(state, action, plan(action), now, lock, retry=True)
        return state, made, timers
    return state, _collect(state, timer.ref, now), []


def _collect(state: DimensionState, converge_id: str, now: float) -> list[Decision]:
    converge = state.collecting.pop(converge_id, None)
    if converge is None and state.converge is not None and state.converge.id == converge_id:
        converge = state.converge
        state.end()
    if converge is None:
        return []
    skipped = tuple(sorted(a for a, role in converge.relations.items() if role == SKIPPED))
    if not skipped and not converge.biz:
        return []
    alerts = tuple(sorted({alert for a in skipped for alert in converge.alerts.get(a, ())}))
    return [
        Decision(
            id=f"collect.{converge_id}",
            action_id=0,
            alert_ids=alerts,
            converge_id=converge_id,
            dimension=converge.dimension,
            function=converge.function,
            decision="collect",
            reason=f"summary of the {len(skipped)} action(s) this converge skipped",
            time=now,
            skipped=skipped,
            biz=converge.biz,
        )
    ]


def _process(
    state: DimensionState, action: Action, plan: Plan, now: float, lock: Lock, retry: bool
) -> tuple[list[Decision], list[Timer]]:
    if action.shield and not action.is_parent:
        return [_decision(state, action, plan, "", "shield", action.shield, now)], []
    config = plan.config
    if config is None:
        return [_decision(state, action, plan, "", "execute", plan.reason, now)], []
    if retry and action.create_time + max(action.timeout, config.window_s) < now:
        return [_decision(state, action, plan, "", "skipped", "sleep timed out", now)], []
    state.window_s = config.window_s
    close_if_stale(state, action.create_time, config.window_s)
    needs_lock = state.converge is None or (
        config.count > 1 and len(state.executed(action.id)) < config.count
    )
    if needs_lock and not lock.acquire(plan.dimension, max(config.count // 2, 1)):
        return [], [_later(state, action, now + LOCK_RETRY_S)]
    try:
        return _converge(state, action, plan, config, now, retry)
    finally:
        if needs_lock:
            lock.release(plan.dimension)


def _converge(
    state: DimensionState,
    action: Action,
    plan: Plan,
    config: ConvergeConfig,
    now: float,
    retry: bool,
) -> tuple[list[Decision], list[Timer]]:
    timers: list[Timer] = []
    if not retry:
        index(state, action.id, action.create_time)
        state.statuses[action.id] = action.status
    is_new = False
    hits: list[int] = []
    if state.converge is None:
        hits = matched(state, action.create_time, config.window_s)
        if hits and len(hits) >= config.count:
            state.converge = Converge(
                f"{plan.dimension}@{action.id}", now, plan.dimension, config.func, plan.biz
            )
            is_new = True
            if config.func in COLLECTING:
                timers.append(Timer(now + COLLECT_DELAY_S, "collect", state.converge.id))
                state.timers.append(timers[-1])
    converge = state.converge
    if converge is None:
        reason = f"{len(hits)} matching action(s) in the window, below count {config.count}"
        return [_decision(state, action, plan, "", "execute", reason, now)], timers
    view = View(is_new, True, state.executed(action.id), config.count)
    status = FUNCTIONS[config.func](view)
    verdict = "execute" if status is None else status
    if is_new:
        converge.relations[action.id] = PRIMARY
        for other in hits:
            if other != action.id and state.statuses.get(other) not in NOT_YET_RUN:
                converge.relations.setdefault(other, EXECUTED)
    elif verdict != "sleep":
        converge.relations[action.id] = SKIPPED if verdict == "skipped" else EXECUTED
    converge.alerts[action.id] = action.alert_ids
    reason = _reason(config, view, verdict, is_new)
    made = [_decision(state, action, plan, converge.id, verdict, reason, now, opened=is_new)]
    if verdict == "sleep":
        timers.append(_later(state, action, now + SLEEP_RETRY_S))
    return made, timers


def _reason(config: ConvergeConfig, view: View, verdict: str, is_new: bool) -> str:
    opened = "opened the converge; " if is_new else ""
    executed = f"{len(view.executed)} other executed action(s), count {config.count}"
    return f"{opened}{config.func}: {verdict} ({executed})"


def _later(state: DimensionState, action: Action, due: float) -> Timer:
    state.pending[action.id] = action
    timer = Timer(due, "retry", str(action.id))
    state.timers.append(timer)
    return timer


def _decision(
    state: DimensionState,
    action: Action,
    plan: Plan,
    converge_id: str,
    verdict: str,
    reason: str,
    now: float,
    opened: bool = False,
) -> Decision:
    attempt = state.attempts.get(action.id, 0) + 1
    state.attempts[action.id] = attempt
    state.statuses[action.id] = RUN_STATUS[verdict]
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
    )
