"""Second-level business summaries (``converge_manger.push_to_sub_converge_queue``,
``converge_func.collect_alarm``).

Converges with ``need_biz_converge`` and a ``sub_converge_config`` share a business dimension
(``{biz}.{signal}.{way}.{receiver}.{level}``). When ``MULTI_STRATEGY_COLLECT_THRESHOLD`` (3) of
them open within one ``MULTI_STRATEGY_COLLECT_WINDOW`` (120 s), one business summary replaces
their per-dimension summaries. bkmonitor's window starts at the first converge's counter INCR;
alarmflow aligns windows to multiples of 120 s of event time so that the outcome does not
depend on the order in which converges of different dimensions reach this step.

A window is decided (at event time ``end + COLLECT_DELAY_S``) once every collecting converge
opened in it has sent its summary (each sends one, empty if it skipped nothing) and the
step's clock has passed the window's end; after end of input, once the summaries are in. No
timer is involved: summaries come from per-dimension timers, so a window decided by this
step's own clock could miss those of quiet dimensions, and Bytewax may end this step before
the summaries the converge step flushes at its own end arrive: :meth:`Business.end` marks the
input ended, and each later summary may still complete a window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from operators.converge.config import MULTI_STRATEGY_COLLECT_THRESHOLD as THRESHOLD
from operators.converge.config import MULTI_STRATEGY_COLLECT_WINDOW as WINDOW
from operators.converge.engine import COLLECT_DELAY_S
from operators.converge.functions import COLLECTING
from operators.converge.records import Decision, Verdict


@dataclass
class BizWindow:
    """Converges opened in one window; the collecting ones owe a summary (possibly empty)."""

    start: float
    opened: set[str] = field(default_factory=set)
    owed: set[str] = field(default_factory=set)
    held: list[Decision] = field(default_factory=list)

    def complete(self) -> bool:
        return not self.owed

    def copy(self) -> BizWindow:
        return replace(self, opened=set(self.opened), owed=set(self.owed), held=list(self.held))


@dataclass
class Business:
    """Windows of one business dimension, by start time; ``clock``: the latest event time;
    ``ended``: the input ended (windows no longer wait for the clock)."""

    windows: dict[float, BizWindow] = field(default_factory=dict)
    converges: dict[str, float] = field(default_factory=dict)
    clock: float = 0.0
    ended: bool = False

    def copy(self) -> Business:
        """An independent copy (the state to restore when a step fails on a record); decisions
        are immutable, so the containers are copied, not them."""
        windows = {start: window.copy() for start, window in self.windows.items()}
        return replace(self, windows=windows, converges=dict(self.converges))

    def savepoint(self, decision: Decision) -> Business:
        """A copy to restore if taking ``decision`` fails: taking changes at most the one window
        the decision belongs to (deciding windows only removes them), so only that window is
        copied, and the containers."""
        start = self._window_of(decision)
        windows = dict(self.windows)
        if start is not None and start in windows:
            windows[start] = windows[start].copy()
        return replace(self, windows=windows, converges=dict(self.converges))

    def _window_of(self, decision: Decision) -> float | None:
        if decision.opened:
            return decision.time // WINDOW * WINDOW
        return self.converges.get(decision.converge_id)

    def take(self, decision: Decision, now: float = math.inf) -> list[Decision]:
        """Note a converge opening, or hold a per-dimension summary; then decide what is
        ready. The business's clock follows the decisions' times, but not past ``now`` (the
        wall clock): a decision dated ahead must not close the windows of the others."""
        return self._take(decision, now) + self._ready()

    def end(self) -> list[Decision]:
        """End of input: decide every window that has all its summaries."""
        self.ended = True
        return self._ready()

    def _take(self, decision: Decision, now: float) -> list[Decision]:
        self.clock = max(self.clock, min(decision.time, now))
        start = self._window_of(decision)
        if decision.opened and start is not None:
            window = self.windows.setdefault(start, BizWindow(start))
            window.opened.add(decision.converge_id)
            if decision.function in COLLECTING:
                window.owed.add(decision.converge_id)
            self.converges[decision.converge_id] = start
            return [decision]
        if decision.decision != Verdict.COLLECT:
            return [decision]
        if start is None or start not in self.windows:
            return [decision] if decision.skipped else []
        window = self.windows[start]
        window.owed.discard(decision.converge_id)
        if decision.skipped:
            window.held.append(decision)
        return []

    def _ready(self) -> list[Decision]:
        """Oldest first, every window with every summary it is owed that has ended by the
        clock (or by the end of input)."""
        out: list[Decision] = []
        for start in sorted(self.windows):
            window = self.windows[start]
            if window.complete() and (self.ended or start + WINDOW <= self.clock):
                out += self._pop(start)
        return out

    def _pop(self, start: float) -> list[Decision]:
        window = self.windows.pop(start)
        for converge_id in window.opened:
            self.converges.pop(converge_id, None)
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
        decision=Verdict.COLLECT,
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
            decision=Verdict.SUPPRESSED,
            reason=f"summary folded into the business summary {summary_id}",
            time=now,
            skipped=d.skipped,
            biz=biz,
        )
        for d in held
    ]
    return [*suppressed, summary]
