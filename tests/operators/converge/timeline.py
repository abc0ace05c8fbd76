"""An Alertmanager-style timeline for converge scenarios on a virtual clock (no sleeps).

``scenario(at(0, push(1)), at(10, push(2)), at(20, status(1, "success")), until=200)`` runs the
pure :class:`Converger`, advancing the clock to each event's time, and returns
``[(time, action_id, decision), ...]``; ``want`` and ``between`` read that list.
"""

from __future__ import annotations

from typing import Any

from operators.converge.context import Action, parse_action
from operators.converge.driver import Converger
from operators.converge.engine import DEFAULT, Runtime
from operators.converge.records import Decision

WEBHOOK = {
    "is_enabled": True,
    "converge_func": "skip_when_success",
    "timedelta": 3600,
    "count": 1,
    "condition": [{"dimension": "action_info", "value": ["self"]}],
}


T0 = 1_700_000_040
"""Scenario times are seconds after this instant (a multiple of 120 s, in November 2023)."""


def action_json(action_id: int, t: float = 0, **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": action_id,
        "create_time": T0 + t,
        "status": "received",
        "signal": "abnormal",
        "strategy_id": 1,
        "bk_biz_id": 2,
        "alert_level": 1,
        "action_config_id": 7,
        "plugin_type": "webhook",
        "alerts": [{"id": f"alert{action_id}", "dimensions": [{"key": "ip", "value": "1"}]}],
        "converge_config": WEBHOOK,
    }
    data.update(fields)
    return data


def push(action_id: int, **fields: Any):
    return lambda t: action_json(action_id, t, **fields)


def status(action_id: int, new_status: str, **fields: Any):
    return lambda t: action_json(action_id, t, status=new_status, **fields)


def at(t: float, make) -> tuple[float, Action]:
    return t, parse_action(make(t))


def scenario(*events: tuple[float, Action], until: float, runtime: Runtime = DEFAULT):
    converger = Converger(runtime)
    out: list[Decision] = []
    for t, action in sorted(events, key=lambda e: e[0]):
        out += converger.advance(T0 + t)
        out += converger.push(action)
    out += converger.advance(T0 + until)
    out += converger.flush()
    return [(d.time - T0, d.action_id or d.id, d.decision) for d in out], out


def between(timeline, t1: float, t2: float) -> list[tuple[Any, str]]:
    return [(ref, kind) for t, ref, kind in timeline if t1 <= t <= t2]
