"""Time-series access throughput, side by side in one run: the real-time and data flows, and
old main's same two flows.

Every runner is a fresh ``python -m bytewax.run`` process (``-w 1``) reading the same topic of
metric points (3 partitions) on the real broker and Redis, run alternately ``--repeat`` times;
a run on an empty topic measures each runner's fixed start-up cost, and "net" leaves it out.
The table shows the median wall time, messages/s and each flow's ratio to old main's same flow
(by net messages/s and by CPU per message). Metric points are CPU samples of hosts 1-38 of
business 2 on ``system.cpu_summary`` within the last 20 minutes, every one a new series point:
the real-time flow pushes them to strategy 401's data list, the data flow aggregates them into
one-minute buckets and runs strategy 402's Threshold check on the buckets.

    python -m bench.real_time_data_throughput [--messages 40000] [--repeat 3] [--old DIR]

``--old`` is a checkout of old main (``git worktree add /work/wt-old 33cd407``); without it
those runners are left out. With ``ALARMFLOW_KAFKA_BOOTSTRAP`` and ``ALARMFLOW_REDIS_URL`` set
it uses those services; otherwise it starts its own on free ports and stops them at the end.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson

from alarmflow.kafka_tools import ensure_topics, produce
from bench.alert_throughput import Runner, Timing, alert_environ, measured_run, services

HOSTS = 38
WINDOW_S = 1200
FLOWS = ("real_time_data", "data")
OLD = "old main"


def points(count: int, now: int) -> Iterator[bytes]:
    for i in range(count):
        host = i % HOSTS + 1
        dims = {"bk_biz_id": 2, "bk_target_ip": f"10.0.0.{host}", "bk_target_cloud_id": "0"}
        at = now - WINDOW_S + (i // HOSTS) % WINDOW_S
        yield orjson.dumps(
            {
                "result_table_id": "system.cpu_summary",
                "time": at,
                "dimensions": dims,
                "metrics": {"usage": float(i % 100)},
            }
        )


def runners(old: Path | None) -> list[Runner]:
    found = []
    for flow in FLOWS:
        command = [sys.executable, "-m", "bytewax.run", f"flows.{flow}"]
        found.append(Runner(flow, command))
        if old is not None:
            found.append(Runner(f"{flow}, {OLD}", command, old))
    return found


def environ(bootstrap: str, redis_url: str, topic: str, dlq: str) -> dict[str, str]:
    """Either flow reading ``topic`` from its beginning to its end under a fresh key prefix."""
    return alert_environ(
        bootstrap,
        redis_url,
        topic,
        dlq,
        ALARMFLOW_REAL_TIME_DATA_TOPICS=topic,
        ALARMFLOW_DATA_TOPICS=topic,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=40_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--old", type=Path, help="a checkout of old main (commit 33cd407)")
    args = parser.parse_args()
    if args.messages > HOSTS * WINDOW_S:
        parser.error(f"--messages above {HOSTS * WINDOW_S} would repeat points")
    chosen = runners(args.old)
    runs: dict[str, list[Timing]] = {r.label: [] for r in chosen}
    startup: dict[str, list[Timing]] = {r.label: [] for r in chosen}
    with services() as (bootstrap, redis_url):
        name = f"bench{uuid.uuid4().hex[:8]}"
        metrics, empty, dlq = f"{name}.points", f"{name}.empty", f"{name}.dlq"
        ensure_topics(bootstrap, [metrics, empty, dlq], partitions=3)
        produce(bootstrap, metrics, points(args.messages, int(time.time())))
        for _ in range(args.repeat):
            for runner in chosen:
                env = environ(bootstrap, redis_url, metrics, dlq)
                runs[runner.label].append(measured_run(runner, env))
                env = environ(bootstrap, redis_url, empty, dlq)
                startup[runner.label].append(measured_run(runner, env))
    print_table(chosen, runs, startup, args.messages, args.repeat)


def print_table(
    chosen: list[Runner],
    runs: dict[str, list[Timing]],
    startup: dict[str, list[Timing]],
    messages: int,
    repeat: int,
) -> None:
    """Median wall and CPU per runner; "net" leaves out the start-up run's; each flow's ratio
    to old main's same flow by net messages/s and by CPU per message."""
    print(f"\n{messages:,} messages, 3 partitions, -w 1, median of {repeat} alternating runs\n")
    print(
        "| runner | wall s (runs) | start-up s | msg/s (wall) | msg/s (net) "
        "| CPU µs/msg (net) | x old (net) | x old (CPU) |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    rows = {}
    for runner in chosen:
        wall = statistics.median(t.wall_s for t in runs[runner.label])
        start = statistics.median(t.wall_s for t in startup[runner.label])
        cpu = statistics.median(t.cpu_s for t in runs[runner.label])
        cpu_start = statistics.median(t.cpu_s for t in startup[runner.label])
        net = messages / max(wall - start, 1e-9)
        rows[runner.label] = (wall, start, net, (cpu - cpu_start) / messages * 1e6)
    for runner in chosen:
        wall, start, net, cpu = rows[runner.label]
        old = rows.get(f"{runner.label}, {OLD}")
        ratios = "| - | - |" if old is None else f"| {net / old[2]:.2f}x | {old[3] / cpu:.2f}x |"
        walls = " / ".join(f"{t.wall_s:.2f}" for t in runs[runner.label])
        print(
            f"| {runner.label} | {walls} | {start:.2f} | {messages / wall:,.0f} | {net:,.0f} "
            f"| {cpu:.0f} {ratios}"
        )


if __name__ == "__main__":
    main()
