"""Second-level business summaries (bkmonitor.md §5.5 step 6, §5.6 ``collect_alarm``).

Converges with ``need_biz_converge`` and a ``sub_converge_config`` share a business dimension
(``{biz}.{signal}.{way}.{receiver}.{level}``). When ``MULTI_STRATEGY_COLLECT_THRESHOLD`` (3) of
them open within one ``MULTI_STRATEGY_COLLECT_WINDOW`` (120 s), one business summary replaces
their per-dimension summaries. bkmonitor's window starts at the first converge's counter INCR;
alarmflow aligns windows to multiples of 120 s of event time so that the outcome does not
depend on the order in which converges of different dimensions reach this step. The windows
are decided ``COLLECT_DELAY_S`` after they end, once every per-dimension summary is in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from operators.converge.config import MULTI_STRATEGY_COLLECT_THRESHOLD as THRESHOLD
from operators.converge.config import MULTI_STRATEGY_COLLECT_WINDOW as WINDOW
from operators.converge.engine import COLLECT_DELAY_S, Decision


@dataclass
class BizWindow:
    start: float
    opened: set[str] = field(default_factory=set)
    held: list[Decision] = field(default_factory=list)


@dataclass
class BizState:
    """Windows of one business dimension, by start time."""

    windows: dict[float, BizWindow] = field(default_factory=dict)
    converges: dict[str, float] = field(default_factory=dict)

    def due(self) -> float | None:
        return min(self.windows) + WINDOW + COLLECT_DELAY_S if self.windows else None


def on_decision(state: BizState, decision: Decision) -> tuple[BizState, list[Decision]]:
    """Note converges opening; hold per-dimension summaries until their window is decided."""
    if decision.opened:
        start = decision.time // WINDOW * WINDOW
        state.windows.setdefault(start, BizWindow(start)).opened.add(decision.converge_id)
        state.converges[decision.converge_id] = start
        return state, [decision]
    start = state.converges.get(decision.converge_id)
    if decision.decision != "collect" or start not in state.windows:
        return state, [decision]
    state.windows[start].held.append(decision)
    return state, []


def fire_due(state: BizState, now: float) -> tuple[BizState, list[Decision]]:
    """Decide every window whose summaries are due by ``now``, oldest first."""
    out: list[Decision] = []
    while (due := state.due()) is not None and due <= now:
        window = state.windows.pop(min(state.windows))
        for converge_id in window.opened:
            state.converges.pop(converge_id, None)
        out += _decide(window, due)
    return state, out


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
