"""Converge throughput: the Bytewax flow against the pure engine in a loop, on one storm.

The storm (:func:`storm`) is also the integration test's input: per converge dimension five
actions, cycling through notice ``collect`` with business summaries, ``skip_when_exceed``,
``skip_when_success`` (with a success status message), ``trigger`` and unconverged webhooks,
over two businesses. Event times start a day ago: a replay, decided by event time and end of
input (a key's timers never fire by wall time between two of its actions).

    python -m bench.converge_throughput [--actions 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid

import orjson

from alarmflow.kafka_tools import ensure_topics, produce
from bench.alert_throughput import services, timed_run
from operators.converge.context import parse_action
from operators.converge.driver import run
from operators.converge.plan import plan

PER_DIMENSION = 5
SUB = {"converge_func": "collect_alarm", "timedelta": 60, "count": 2}
ON = {"is_enabled": True}
CONFIGS = (
    {**ON, "converge_func": "collect", "timedelta": 60, "count": 1, "need_biz_converge": True},
    {**ON, "converge_func": "skip_when_exceed", "timedelta": 300, "count": 3},
    {**ON, "converge_func": "skip_when_success", "timedelta": 300, "count": 1},
    {**ON, "converge_func": "trigger", "timedelta": 300, "count": 1},
    None,
)


START = (int(time.time()) - 86400) // 120 * 120
"""A business-window boundary (a multiple of 120 s) a day ago."""


def storm(actions: int, start: int = START) -> list[dict]:
    """``actions`` actions over ``actions // 5`` dimensions, plus one success status message
    per ``skip_when_success`` dimension, in event-time order."""
    messages = []
    for dim in range(actions // PER_DIMENSION):
        kind = dim % len(CONFIGS)
        config = CONFIGS[kind]
        if kind == 0:
            config = {**config, "sub_converge_config": SUB}
        base = start + (dim // len(CONFIGS)) * 11
        fields = {
            "strategy_id": 1000 + dim,
            "bk_biz_id": 2 + dim % 2,
            "alert_level": 1,
            "signal": "abnormal",
            "action_config_id": 7,
            "plugin_type": "notice" if kind == 0 else "webhook",
            "notice_way": "mail",
            "notice_receiver": [f"user{dim // 5 % 4}"],
            "converge_config": config,
        }
        for k in range(PER_DIMENSION):
            action_id = dim * 10 + k + 1
            alerts = [{"id": f"alert{action_id}", "dimensions": [{"key": "ip", "value": "1"}]}]
            messages.append(
                {"id": action_id, "create_time": base + 7 * k, "alerts": alerts, **fields}
            )
        if kind == 2:
            first = messages[-PER_DIMENSION]
            messages.append({**first, "create_time": base + 20, "status": "success"})
    return sorted(messages, key=lambda m: m["create_time"])


def by_dimension(message: bytes) -> bytes:
    """The Kafka key keeping each converge dimension in one partition, in order."""
    return plan(parse_action(orjson.loads(message))).key.encode()


def engine_seconds(messages: list[dict]) -> tuple[float, int]:
    started = time.perf_counter()
    decisions = run([parse_action(m) for m in messages])
    return time.perf_counter() - started, len(decisions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actions", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    messages = storm(args.actions)
    with services() as (bootstrap, redis_url):
        stem = f"bench{uuid.uuid4().hex[:8]}"
        names = ("in", "empty", "dlq", "dec", "audit")
        topic, empty, dlq, decisions, audit = (f"{stem}.{n}" for n in names)
        ensure_topics(bootstrap, [topic, empty, dlq, decisions, audit], 1)
        produce(bootstrap, topic, [orjson.dumps(m) for m in messages], by_dimension)
        os.environ.update(
            ALARMFLOW_ACTION_TOPICS=topic,
            ALARMFLOW_DECISION_TOPIC=decisions,
            ALARMFLOW_AUDIT_TOPIC=audit,
        )
        flow_times, start_times, engine_times = [], [], []
        count = 0
        command = [sys.executable, "-m", "bytewax.run", "flows.converge"]
        for _ in range(args.repeat):
            flow_times.append(timed_run(command, bootstrap, redis_url, topic, dlq))
            os.environ["ALARMFLOW_ACTION_TOPICS"] = empty
            start_times.append(timed_run(command, bootstrap, redis_url, empty, dlq))
            os.environ["ALARMFLOW_ACTION_TOPICS"] = topic
            seconds, count = engine_seconds(messages)
            engine_times.append(seconds)
    flow_s, engine_s = statistics.median(flow_times), statistics.median(engine_times)
    start_s = statistics.median(start_times)
    work_s = max(flow_s - start_s, 1e-3)
    print(f"{len(messages)} messages, {count} decisions, median of {args.repeat} runs\n")
    print("| runner | seconds | decisions/s |")
    print("|---|---|---|")
    print(f"| bytewax flow (-w 1), whole run | {flow_s:.2f} | {count / flow_s:,.0f} |")
    print(f"| bytewax flow, empty topic (start-up) | {start_s:.2f} | |")
    print(f"| bytewax flow minus start-up | {work_s:.2f} | {count / work_s:,.0f} |")
    print(f"| pure engine loop | {engine_s:.3f} | {count / engine_s:,.0f} |")
    print(f"\nratio flow (minus start-up) / engine: {work_s / engine_s:.1f}x")


if __name__ == "__main__":
    main()
