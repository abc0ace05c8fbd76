"""Routing alerts to (strategy, item) by strategy id or by alert name and conditions."""

from __future__ import annotations

import pytest

from alarmflow.config import BUNDLED_STRATEGIES
from operators.routing import AlertRouter, Target
from operators.strategy import load_strategy_file

ROUTER = AlertRouter(load_strategy_file(BUNDLED_STRATEGIES))


def event(name: str, biz: int = 2, tags: dict | None = None, **fields) -> dict:
    tag_list = [{"key": k, "value": v} for k, v in (tags or {}).items()]
    return {"alert_name": name, "bk_biz_id": biz, "tags": tag_list, **fields}


@pytest.mark.parametrize(
    ("alert", "targets"),
    [
        (event("CPU usage high"), [Target(101, 1001)]),
        (event("CPU usage high", biz=3), []),
        (event("CPU usage high", biz="2"), [Target(101, 1001)]),
        (event("Disk full", tags={"mount": "/data/db"}), [Target(102, 1002)]),
        (event("Disk full", tags={"mount": "/"}), [Target(102, 1002)]),
        (event("Disk full", tags={"mount": "/tmp"}), []),
        (event("Disk full"), [Target(102, 1002)]),
        (
            event("Pod CrashLoopBackOff", biz=3, tags={"namespace": "prod-pay"}),
            [Target(103, 1003), Target(103, 1004)],
        ),
        (event("Pod CrashLoopBackOff", biz=3, tags={"namespace": "dev-x"}), [Target(103, 1003)]),
        (event("Nobody watches this"), []),
        (event("Anything", strategy_id=201), [Target(201, 2001)]),
        (event("CPU usage high", strategy_id="103"), [Target(103, 1003), Target(103, 1004)]),
        (event("CPU usage high", strategy_id=999), []),
    ],
)
def test_routing_table(alert, targets):
    assert list(ROUTER.route(alert)) == targets
