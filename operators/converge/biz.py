"""Second-level business summaries (bkmonitor.md §5.5 step 6, §5.6 ``collect_alarm``).

Converges with ``need_biz_converge`` and a ``sub_converge_config`` share a business dimension
(``{biz}.{signal}.{way}.{receiver}.{level}``). When ``MULTI_STRATEGY_COLLECT_THRESHOLD`` (3) of
them open within one ``MULTI_STRATEGY_COLLECT_WINDOW`` (120 s), one business summary replaces
their per-dimension summaries. bkmonitor's window starts at the first converge's counter INCR;
alarmflow aligns windows to multiples of 120 s of event time so that the outcome does not
depend on the order in which converges of different dimensions reach this step.

A window is decided (at event time ``end + COLLECT_DELAY_S``) once every collecting converge
opened in it has sent its summary (each sends one, empty if it skipped nothing) and the
step's clock has passed the window's end; at end of input, once the summaries are in. No
timer is involved: summaries come from per-dimension timers, so a window decided by this
step's own clock could miss those of quiet dimensions, and Bytewax may end this step before
the summaries the converge step flushes at its own end arrive.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from operators.converge.config import MULTI_STRATEGY_COLLECT_THRESHOLD as THRESHOLD
from operators.converge.config import MULTI_STRATEGY_COLLECT_WINDOW as WINDOW
from operators.converge.engine import COLLECT_DELAY_S, Decision
from operators.converge.functions import COLLECTING


@dataclass
class BizWindow:
    """Converges opened in one window; the collecting ones owe a summary (possibly empty)."""

    start: float
    opened: set[str] = field(default_factory=set)
    owed: set[str] = field(default_factory=set)
    held: list[Decision] = field(default_factory=list)

    def complete(self) -> bool:
        return not self.owed


@dataclass
class BizState:
    """Windows of one business dimension, by start time; ``clock``: the latest event time."""

    windows: dict[float, BizWindow] = field(default_factory=dict)
    converges: dict[str, float] = field(default_factory=dict)
    clock: float = 0.0


def on_decision(state: BizState, decision: Decision) -> tuple[BizState, list[Decision]]:
    """Note converges opening; hold per-dimension summaries until their window is decided."""
    state.clock = max(state.clock, decision.time)
    if decision.opened:
        start = decision.time // WINDOW * WINDOW
        window = state.windows.setdefault(start, BizWindow(start))
        window.opened.add(decision.converge_id)
        if decision.function in COLLECTING:
            window.owed.add(decision.converge_id)
        state.converges[decision.converge_id] = start
        return state, [decision]
    if decision.decision != "collect":
        return state, [decision]
    start = state.converges.get(decision.converge_id)
    if start not in state.windows:
        return state, [decision] if decision.skipped else []
    window = state.windows[start]
    window.owed.discard(decision.converge_id)
    if decision.skipped:
        window.held.append(decision)
    return state, []


def ready(state: BizState, final: bool) -> tuple[BizState, list[Decision]]:
    """Decide, oldest first, every window that has every summary it is owed and has ended by
    the step's clock (the latest event time it saw), or, at end of input (``final``), every
    window with all its summaries."""
    out: list[Decision] = []
    for start in sorted(state.windows):
        window = state.windows[start]
        if window.complete() and (final or start + WINDOW <= state.clock):
            out += _pop(state, start)
    return state, out


def _pop(state: BizState, start: float) -> list[Decision]:
    window = state.windows.pop(start)
    for converge_id in window.opened:
        state.converges.pop(converge_id, None)
    return _decide(window, start + WINDOW + COLLECT_DELAY_S)


def _decide(window: BizWindow, now: float) -> list[Decision]:
    held = sorted(window.held, key=lambda d: d.id)
    if len(window.opened) < THRESHOLD or not held:
        return held
    biz = held[0].biz
    summary_id = f"biz:{biz}@{window.start:.0f}"
    summary = Decision(
        id=f"collect.{summary_id}",
        action_id=0,
        alert_ids=tuple(sorted({a for d in held for a in d.alert_ids})),
        converge_id=summary_id,
        dimension=biz,
        function="collect_alarm",
        decision="collect",
        reason=f"business summary of {len(window.opened)} converges opened within {WINDOW} s",
        time=now,
        skipped=tuple(sorted(a for d in held for a in d.skipped)),
        biz=biz,
    )
    suppressed = [
        Decision(
            id=f"suppressed.{d.converge_id}",
            action_id=0,
            alert_ids=d.alert_ids,
            converge_id=d.converge_id,
            dimension=d.dimension,
            function=d.function,
            decision="suppressed",
            reason=f"summary folded into the business summary {summary_id}",
            time=now,
            skipped=d.skipped,
            biz=biz,
        )
        for d in held
    ]
    return [*suppressed, summary]
