"""The whole converge layer over a stream of actions, without Bytewax: the reference the flow
must equal, the timeline the scenario tests drive, and the loop the benchmark times.

Per converge dimension: timers due by an action's event time fire before it is decided.
Business windows are decided as their summaries arrive (:mod:`operators.converge.biz`).
:meth:`Converger.flush` fires every pending timer in due order, then decides every business
window, as the flow does at end of input (``ALARMFLOW_TAIL=0``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from operators.converge import biz, engine
from operators.converge.context import Action
from operators.converge.state import DimensionState


@dataclass
class Converger:
    lock: engine.Lock = engine.NO_LOCK
    dimensions: dict[str, DimensionState] = field(default_factory=dict)
    businesses: dict[str, biz.BizState] = field(default_factory=dict)

    def push(self, action: Action) -> list[engine.Decision]:
        planned = engine.plan(action)
        state = self.dimensions.setdefault(planned.dimension, DimensionState())
        _, decisions, _ = engine.decide(state, action, action.create_time, self.lock, planned)
        return self._through_biz(decisions)

    def advance(self, now: float) -> list[engine.Decision]:
        """Fire every dimension timer due by ``now``."""
        out: list[engine.Decision] = []
        for state in self.dimensions.values():
            out += self._through_biz(engine.fire_due(state, now, self.lock)[1])
        return out

    def flush(self) -> list[engine.Decision]:
        """End of input: every dimension's timers, then every business window."""
        out = self.advance(float("inf"))
        for state in self.businesses.values():
            out += biz.ready(state, final=True)[1]
        return out

    def _through_biz(self, decisions: list[engine.Decision]) -> list[engine.Decision]:
        out: list[engine.Decision] = []
        for decision in decisions:
            if decision.biz:
                state = self.businesses.setdefault(decision.biz, biz.BizState())
                out += biz.on_decision(state, decision)[1]
                out += biz.ready(state, final=False)[1]
            else:
                out.append(decision)
        return out


def run(actions: list[Action], lock: engine.Lock = engine.NO_LOCK) -> list[engine.Decision]:
    """Every decision for ``actions`` (in order), pending timers flushed at the end."""
    converger = Converger(lock)
    decisions = [d for action in actions for d in converger.push(action)]
    return decisions + converger.flush()
