"""Converge memory: bytes per active dimension, and the flow's RSS over time on always-new
dimensions (a memory soak, not a test).

Part 1 measures with ``tracemalloc`` the engine state of ``--dims`` dimensions holding one
action each (the common case of always-new dimensions) and holding five. Part 2 runs the flow
(tailing) for ``--seconds`` while producing ``--rate`` actions per second, each on a new
dimension, their event times advancing ``--speed`` seconds per wall second (a replay), and
prints the flow process's RSS every ``--every`` seconds: it levels off once dimensions expire
(the watermark passes their last action by the index TTL plus the allowed lag, 3,600 s of
event time).

    python -m bench.converge_memory [--dims 20000] [--seconds 150] [--rate 500] [--speed 60]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import tracemalloc
import uuid
from pathlib import Path

import orjson

from alarmflow.kafka_tools import ensure_topics, produce
from bench.alert_throughput import REPO, services
from operators.converge.context import parse_action
from operators.converge.engine import Dimension
from operators.converge.plan import plan

CONFIG = {"is_enabled": True, "converge_func": "skip_when_exceed", "timedelta": 300, "count": 3}


def action(n: int, t: float) -> dict:
    return {
        "id": n,
        "create_time": t,
        "strategy_id": 100_000 + n,
        "bk_biz_id": 2,
        "signal": "abnormal",
        "plugin_type": "webhook",
        "action_config_id": 7,
        "alerts": [{"id": f"alert{n}", "dimensions": [{"key": "ip", "value": str(n)}]}],
        "converge_config": CONFIG,
    }


def bytes_per_dimension(dims: int, actions: int) -> float:
    """Engine state bytes per dimension holding ``actions`` actions."""
    now = time.time() - 3600
    parsed = [
        [parse_action({**action(d, now + k), "id": d * 10 + k}) for k in range(actions)]
        for d in range(dims)
    ]
    plans = [[plan(a) for a in group] for group in parsed]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    states = []
    for group, planned in zip(parsed, plans, strict=True):
        state = Dimension()
        for a, p in zip(group, planned, strict=True):
            state.push(a, p)
        states.append(state)
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return used / len(states)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def soak(seconds: int, rate: int, speed: int, every: int) -> None:
    with services() as (bootstrap, redis_url):
        stem = f"mem{uuid.uuid4().hex[:8]}"
        topics = [f"{stem}.{n}" for n in ("in", "dlq", "dec", "audit")]
        ensure_topics(bootstrap, topics, 1)
        env = dict(
            os.environ,
            PYTHONPATH=str(REPO),
            ALARMFLOW_KAFKA_BOOTSTRAP=bootstrap,
            ALARMFLOW_REDIS_URL=redis_url,
            ALARMFLOW_KEY_PREFIX=stem,
            ALARMFLOW_ACTION_TOPICS=topics[0],
            ALARMFLOW_DLQ_TOPIC=topics[1],
            ALARMFLOW_DECISION_TOPIC=topics[2],
            ALARMFLOW_AUDIT_TOPIC=topics[3],
            ALARMFLOW_TAIL="1",
            ALARMFLOW_START="earliest",
            ALARMFLOW_METRICS_PORT="0",
        )
        command = [sys.executable, "-m", "bytewax.run", "flows.converge"]
        flow = subprocess.Popen(command, env=env, cwd=REPO, stderr=subprocess.DEVNULL)
        started = time.time()
        event_start = started - seconds * speed - 3 * 3600
        n = 0
        print("| wall s | actions produced | event time advanced (h) | RSS MiB |")
        print("|---|---|---|---|")
        try:
            for second in range(seconds):
                t = event_start + second * speed
                batch = [orjson.dumps(action(n + i, t + i * speed / rate)) for i in range(rate)]
                produce(bootstrap, topics[0], batch)
                n += rate
                time.sleep(max(0.0, started + second + 1 - time.time()))
                if (second + 1) % every == 0:
                    hours = (second + 1) * speed / 3600
                    print(f"| {second + 1} | {n:,} | {hours:.1f} | {rss_mib(flow.pid):.0f} |")
        finally:
            flow.kill()
            flow.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, default=20_000)
    parser.add_argument("--seconds", type=int, default=150)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--speed", type=int, default=60)
    parser.add_argument("--every", type=int, default=10)
    args = parser.parse_args()
    for actions in (1, 5):
        found = bytes_per_dimension(args.dims, actions)
        print(f"engine state, {actions} action(s) per dimension: {found:,.0f} bytes per dimension")
    print()
    soak(args.seconds, args.rate, args.speed, args.every)


if __name__ == "__main__":
    main()
