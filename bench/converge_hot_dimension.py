"""A busy converge dimension: the pure engine's cost per action as one dimension gathers actions.

Every action of the storm falls into one converge dimension (``skip_when_exceed``, count 3,
a 300 s window), ten actions per second of event time, so the dimension's index holds up to
30 minutes of them (``INDEX_TTL_S``) and its open converge relates every action of its window.
The table gives the engine's CPU per action (:func:`operators.converge.driver.run`, in this
process, the flow's heap settings) for growing storms: what one dimension, which one worker
owns, can decide per second. A second column gives the CPU per action of the flow's step for
one dimension (``flows.converge_logic.DimensionLogic``) given the same actions in batches of
``--batch``, as a tailing flow gets them, each followed by the key's next timer: it adds the
copy of the state it makes per batch and the key's expiry.

    python -m bench.converge_hot_dimension [--sizes 1000 4000 16000] [--batch 10]
"""

from __future__ import annotations

import argparse
import time

from alarmflow.heap import settle_heap
from flows.converge_logic import DimensionLogic
from operators.converge.context import Action, parse_action
from operators.converge.driver import run
from operators.converge.engine import DEFAULT
from operators.converge.plan import plan
from operators.converge.records import Planned
from operators.rejects import SourceRecord

PER_SECOND = 10
CONFIG = {"is_enabled": True, "converge_func": "skip_when_exceed", "timedelta": 300, "count": 3}


def one_dimension(actions: int, start: int) -> list[Action]:
    """``actions`` webhook actions of one strategy and dimension, ``PER_SECOND`` a second."""
    return [
        parse_action(
            {
                "id": n + 1,
                "create_time": start + n // PER_SECOND,
                "strategy_id": 1,
                "bk_biz_id": 2,
                "alert_level": 1,
                "signal": "abnormal",
                "action_config_id": 7,
                "plugin_type": "webhook",
                "converge_config": CONFIG,
                "alerts": [{"id": f"alert{n}", "dimensions": [{"key": "ip", "value": "1"}]}],
            }
        )
        for n in range(actions)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000, 16000])
    parser.add_argument("--batch", type=int, default=10)
    args = parser.parse_args()
    settle_heap()
    start = int(time.time()) - 86400
    print(
        "| actions in the dimension | engine CPU µs per action | actions/s "
        f"| the flow's step, batches of {args.batch}: CPU µs per action |"
    )
    print("|---:|---:|---:|---:|")
    for size in args.sizes:
        actions = one_dimension(size, start)
        started = time.process_time()
        run(actions)
        per_action = (time.process_time() - started) / size
        in_step = flow_step(actions, args.batch) / size
        print(
            f"| {size:,} | {per_action * 1e6:,.0f} | {1 / per_action:,.0f} | {in_step * 1e6:,.0f} |"
        )


def flow_step(actions: list[Action], batch: int) -> float:
    """CPU seconds of the flow's step for one dimension deciding ``actions`` in batches, each
    followed by the key's next timer, which Bytewax asks for after every batch."""
    source = SourceRecord("bench", 0, 0, b"")
    planned = [Planned(source, action, plan(action)) for action in actions]
    logic = DimensionLogic(None, DEFAULT)
    started = time.process_time()
    for first in range(0, len(planned), batch):
        logic.on_batch(planned[first : first + batch])
        logic.notify_at()
    return time.process_time() - started


if __name__ == "__main__":
    main()
