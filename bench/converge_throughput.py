"""Converge throughput: the Bytewax flow against the pure engine in a loop, on one storm.

The storm (:func:`storm`) is also the integration test's input: per converge dimension five
actions, cycling through notice ``collect`` with business summaries, ``skip_when_exceed``,
``skip_when_success`` (with a success status message), ``trigger`` and unconverged webhooks,
over two businesses. Event times start a day ago: a replay, decided by event time and end of
input (a key's timers never fire by wall time between two of its actions).

The flow (``-w 1``, from its start to the end of the topic) and the pure engine in a loop
(:func:`engine_run`, CPU seconds of this process) decide the same storm, alternately; after
each round every flow run's decision messages must be the engine's, byte for byte. The table
gives each flow's whole run, its start-up (the same command on an empty topic) and the
difference, in wall and CPU seconds (CPU of the flow's processes, and apart the broker's and
Redis's CPU meanwhile), and the flow's decisions/s as a ratio to the engine's. ``--before``
adds main as it was before issue 13 (``git worktree add /tmp/before b5717c3``), run the same
way.

    python -m bench.converge_throughput [--actions 10000] [--repeat 3] [--before DIR]

The default storm, 10,000 actions, leaves the flow about two seconds of work after its
start-up; at 1,000 actions that was a tenth of a second, less than the start-up's own spread
from run to run, so the ratio said more about the noise than about the flow.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import NamedTuple

import orjson

from alarmflow.kafka_tools import ensure_topics, produce, read_all
from bench.alert_throughput import (
    Runner,
    Timing,
    alert_environ,
    measured_run,
    round_seconds,
    services,
)
from bench.server_cpu import ServerCpu
from operators.converge.audit import decision_message
from operators.converge.context import parse_action
from operators.converge.driver import run
from operators.converge.plan import plan
from operators.converge.records import Decision

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


def engine_run(values: list[bytes]) -> tuple[Timing, list[Decision]]:
    """Wall and CPU seconds (this process) of the pure engine on the storm's messages: decode,
    parse and plan each action, route it to its dimension and business state, flush at the
    end (:func:`operators.converge.driver.run`); and its decisions."""
    wall, cpu = time.perf_counter(), time.process_time()
    decisions = run([parse_action(orjson.loads(value)) for value in values])
    return Timing(time.perf_counter() - wall, time.process_time() - cpu), decisions


def flow_environ(bootstrap: str, redis_url: str, topics: Topics, action_topic: str) -> dict:
    return alert_environ(
        bootstrap,
        redis_url,
        topics.empty,
        topics.dlq,
        ALARMFLOW_ACTION_TOPICS=action_topic,
        ALARMFLOW_DECISION_TOPIC=topics.decisions,
        ALARMFLOW_AUDIT_TOPIC=topics.audit,
    )


class Topics(NamedTuple):
    actions: str
    empty: str
    dlq: str
    decisions: str
    audit: str


def same_decisions(bootstrap: str, topic: str, decisions: list[Decision]) -> int:
    """How many decision messages the flow wrote to ``topic``; they must be the engine's
    messages, byte for byte."""
    wrote = sorted(read_all(bootstrap, topic))
    expected = sorted(orjson.dumps(decision_message(d)) for d in decisions)
    if wrote != expected:
        raise SystemExit(f"the flow wrote {len(wrote)} decisions, not the engine's {len(expected)}")
    return len(wrote)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actions", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--before", type=Path, help="a checkout of main before issue 13 (b5717c3)")
    args = parser.parse_args()
    values = [orjson.dumps(m) for m in storm(args.actions)]
    flows = {"flow": Runner("flow", FLOW_COMMAND)}
    if args.before:
        flows["before"] = Runner("before", FLOW_COMMAND, args.before.resolve())
    timings: dict[str, list[Timing]] = {f"{name} {kind}": [] for name in flows for kind in KINDS}
    engine: list[Timing] = []
    with services() as (bootstrap, redis_url):
        stem = f"bench{uuid.uuid4().hex[:8]}"
        topics = Topics(*(f"{stem}.{n}" for n in ("in", "empty", "dlq", "dec", "audit")))
        ensure_topics(bootstrap, list(topics), 1)
        produce(bootstrap, topics.actions, values, by_dimension)
        servers = ServerCpu.of(bootstrap, redis_url)
        for repeat in range(args.repeat):
            for name, runner in flows.items():
                per_run = topics._replace(decisions=f"{topics.decisions}.{name}{repeat}")
                ensure_topics(bootstrap, [per_run.decisions], 1)
                for kind, topic in zip(KINDS, (topics.actions, topics.empty), strict=True):
                    env = flow_environ(bootstrap, redis_url, per_run, topic)
                    timings[f"{name} {kind}"].append(measured_run(runner, env, servers))
            timing, decisions = engine_run(values)
            engine.append(timing)
            for name in flows:
                count = same_decisions(bootstrap, f"{topics.decisions}.{name}{repeat}", decisions)
    print(table(len(values), count, timings, engine, args.repeat))


KINDS = ("storm", "empty topic")
FLOW_COMMAND = [sys.executable, "-m", "bytewax.run", "flows.converge"]


def table(
    messages: int,
    decisions: int,
    timings: dict[str, list[Timing]],
    engine: list[Timing],
    repeat: int,
) -> str:
    """Per flow: medians of wall and CPU seconds for the storm, for start-up (an empty topic)
    and their difference, with decisions/s and its ratio to the engine's."""
    engine_s, engine_cpu = (statistics.median(getattr(t, f) for t in engine) for f in FIELDS)
    lines = [
        f"{messages:,} messages, {decisions:,} decisions: every flow run wrote the engine's "
        f"decision messages, byte for byte; medians of {repeat} alternating runs",
        "",
        "| runner | wall s | CPU s | broker CPU s | Redis CPU s | decisions/s (wall) "
        "| ratio to the engine (wall) | ratio to the engine (CPU) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in dict.fromkeys(key.rsplit(" ", 2)[0] for key in timings):
        storm_t, empty_t = timings[f"{name} storm"], timings[f"{name} empty topic"]
        wall, cpu, broker, redis = (
            statistics.median(getattr(t, f) for t in storm_t) for f in SERVER_FIELDS
        )
        wall0, cpu0, broker0, redis0 = (
            statistics.median(getattr(t, f) for t in empty_t) for f in SERVER_FIELDS
        )
        work, work_cpu = wall - wall0, cpu - cpu0
        lines += [
            f"| {name}, whole run | {wall:.2f} | {cpu:.2f} | {broker:.2f} | {redis:.2f} "
            f"| {decisions / wall:,.0f} | {engine_s / wall:.2f} | {engine_cpu / cpu:.2f} |",
            f"| {name}, start-up (empty topic) | {wall0:.2f} | {cpu0:.2f} | {broker0:.2f} "
            f"| {redis0:.2f} | | | |",
            f"| {name} minus start-up | {work:.2f} | {work_cpu:.2f} | {broker - broker0:.2f} "
            f"| {redis - redis0:.2f} | {decisions / work:,.0f} | **{engine_s / work:.2f}** "
            f"| {engine_cpu / work_cpu:.2f} |",
        ]
    lines.append(
        f"| pure engine loop | {engine_s:.2f} | {engine_cpu:.2f} | | "
        f"| {decisions / engine_s:,.0f} | 1.00 | 1.00 |"
    )
    lines.append("")
    for name in dict.fromkeys(key.rsplit(" ", 2)[0] for key in timings):
        net = round_seconds(timings[f"{name} storm"], timings[f"{name} empty topic"])
        per_round = [f"{t.wall_s / s:.2f}" for t, s in zip(engine, net, strict=True)]
        lines.append(
            f"{name}, round by round against the engine's run of the same round (wall, net of "
            f"start-up): {', '.join(per_round)}"
        )
    return "\n".join(lines)


FIELDS = ("wall_s", "cpu_s")
SERVER_FIELDS = (*FIELDS, "broker_s", "redis_s")


if __name__ == "__main__":
    main()
