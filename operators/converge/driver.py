"""The whole converge layer over a stream of actions, without Bytewax: the reference the flow
must equal, the timeline the scenario tests drive, and the loop the benchmark times.

It only routes, as the flow's keyed steps do: an action to its key's :class:`Dimension`, a
decision with a business dimension to that :class:`Business`. What happens for a key is the
state objects' methods, the same ones the flow's steps call.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from operators.converge.biz import Business
from operators.converge.context import Action
from operators.converge.engine import DEFAULT, Dimension, Runtime
from operators.converge.plan import plan
from operators.converge.records import Decision


@dataclass
class Converger:
    runtime: Runtime = DEFAULT
    dimensions: dict[str, Dimension] = field(default_factory=dict)
    businesses: dict[str, Business] = field(default_factory=dict)

    def push(self, action: Action) -> list[Decision]:
        planned = plan(action)
        dimension = self.dimensions.setdefault(planned.key, Dimension())
        return self._through_biz(dimension.push(action, planned, self.runtime))

    def advance(self, now: float) -> list[Decision]:
        """Fire every dimension timer due by ``now``."""
        out: list[Decision] = []
        for dimension in self.dimensions.values():
            out += self._through_biz(dimension.advance(now, self.runtime))
        return out

    def flush(self) -> list[Decision]:
        """End of input: every dimension's timers, then every business window."""
        out: list[Decision] = []
        for dimension in self.dimensions.values():
            out += self._through_biz(dimension.flush(self.runtime.shields))
        for business in self.businesses.values():
            out += business.end()
        return out

    def _through_biz(self, decisions: list[Decision]) -> list[Decision]:
        out: list[Decision] = []
        for decision in decisions:
            if decision.biz:
                out += self.businesses.setdefault(decision.biz, Business()).take(decision)
            else:
                out.append(decision)
        return out


def run(actions: list[Action], runtime: Runtime = DEFAULT) -> list[Decision]:
    """Every decision for ``actions`` (in order), pending timers flushed at the end."""
    converger = Converger(runtime)
    decisions = [d for action in actions for d in converger.push(action)]
    return decisions + converger.flush()
