"""Time-series access throughput: the real-time and data flows against the alert flow.

All three run as fresh ``python -m bytewax.run`` processes (``-w 1``) over the same number of
messages on the real broker and Redis, alternating, ``--repeat`` times each; the table shows
the median wall time, messages/s and each flow's ratio to the alert flow. Metric points are
CPU samples of hosts 1-38 of business 2 on ``system.cpu_summary`` within the last 20 minutes,
every one a new series point: the real-time flow pushes them to strategy 401's data list, the
data flow aggregates them into one-minute buckets and runs strategy 402's Threshold check on
the buckets.

    python -m bench.real_time_data_throughput [--messages 40000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from collections.abc import Iterator

import orjson

from alarmflow.kafka_tools import ensure_topics, produce
from alarmflow.samples import sample_messages
from bench.alert_throughput import services, timed_run

HOSTS = 38
WINDOW_S = 1200
FLOWS = {
    "alert": "ALARMFLOW_ALERT_TOPICS",
    "real_time_data": "ALARMFLOW_REAL_TIME_DATA_TOPICS",
    "data": "ALARMFLOW_DATA_TOPICS",
}


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=40_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if args.messages > HOSTS * WINDOW_S:
        parser.error(f"--messages above {HOSTS * WINDOW_S} would repeat points")
    walls: dict[str, list[float]] = {name: [] for name in FLOWS}
    with services() as (bootstrap, redis_url):
        name = f"bench{uuid.uuid4().hex[:8]}"
        alerts, metrics, dlq = f"{name}.alert", f"{name}.points", f"{name}.dlq"
        ensure_topics(bootstrap, [alerts, metrics, dlq], partitions=3)
        now = int(time.time())
        produce(bootstrap, alerts, sample_messages(args.messages, now))
        produce(bootstrap, metrics, points(args.messages, now))
        for _ in range(args.repeat):
            for flow, variable in FLOWS.items():
                os.environ[variable] = alerts if flow == "alert" else metrics
                command = [sys.executable, "-m", "bytewax.run", f"flows.{flow}"]
                walls[flow].append(timed_run(command, bootstrap, redis_url, alerts, dlq))
    print(f"\n{args.messages} messages, 3 partitions, -w 1, median of {args.repeat} runs each\n")
    print("| flow | wall s (runs) | messages/s | ratio to alert |")
    print("|---|---|---:|---:|")
    alert_rate = args.messages / statistics.median(walls["alert"])
    for flow in FLOWS:
        rate = args.messages / statistics.median(walls[flow])
        runs = " / ".join(f"{w:.2f}" for w in walls[flow])
        print(f"| flows.{flow} | {runs} | {rate:,.0f} | {rate / alert_rate:.2f} |")


if __name__ == "__main__":
    main()
