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
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Row:
    """One runner's medians: wall and start-up seconds, net messages/s, CPU µs per message net
    of start-up."""

    walls: list[float]
    start_s: float
    net_rate: float
    cpu_us: float

    @classmethod
    def of(cls, pairs: list[tuple[Timing, Timing]], messages: int) -> Row:
        """From (run, start-up run) pairs."""
        wall = statistics.median(run.wall_s for run, _ in pairs)
        start = statistics.median(empty.wall_s for _, empty in pairs)
        cpu = statistics.median(run.cpu_s for run, _ in pairs)
        cpu_start = statistics.median(empty.cpu_s for _, empty in pairs)
        net = messages / max(wall - start, 1e-9)
        return cls([run.wall_s for run, _ in pairs], start, net, (cpu - cpu_start) / messages * 1e6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=40_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--old", type=Path, help="a checkout of old main (commit 33cd407)")
    args = parser.parse_args()
    if args.messages > HOSTS * WINDOW_S:
        parser.error(f"--messages above {HOSTS * WINDOW_S} would repeat points")
    chosen = runners(args.old)
    pairs: dict[str, list[tuple[Timing, Timing]]] = {r.label: [] for r in chosen}
    with services() as (bootstrap, redis_url):
        name = f"bench{uuid.uuid4().hex[:8]}"
        metrics, empty, dlq = f"{name}.points", f"{name}.empty", f"{name}.dlq"
        ensure_topics(bootstrap, [metrics, empty, dlq], partitions=3)
        produce(bootstrap, metrics, points(args.messages, int(time.time())))
        for _ in range(args.repeat):
            for runner in chosen:
                run = measured_run(runner, environ(bootstrap, redis_url, metrics, dlq))
                start = measured_run(runner, environ(bootstrap, redis_url, empty, dlq))
                pairs[runner.label].append((run, start))
    rows = {label: Row.of(found, args.messages) for label, found in pairs.items()}
    print(
        f"\n{args.messages:,} messages, 3 partitions, -w 1, "
        f"median of {args.repeat} alternating runs\n"
    )
    print(
        "| runner | wall s (runs) | start-up s | msg/s (wall) | msg/s (net) "
        "| CPU µs/msg (net) | x old (net) | x old (CPU) |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for label, row in rows.items():
        old = rows.get(f"{label}, {OLD}")
        ratios = (
            "- | -"
            if old is None
            else f"{row.net_rate / old.net_rate:.2f}x | {old.cpu_us / row.cpu_us:.2f}x"
        )
        walls = " / ".join(f"{w:.2f}" for w in row.walls)
        rate = args.messages / statistics.median(row.walls)
        print(
            f"| {label} | {walls} | {row.start_s:.2f} | {rate:,.0f} | {row.net_rate:,.0f} "
            f"| {row.cpu_us:.0f} | {ratios} |"
        )


if __name__ == "__main__":
    main()
