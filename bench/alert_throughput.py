"""Alert access throughput: the Bytewax flow against a plain confluent-kafka + redis-py loop.

Both run as fresh processes against the same topic on the real broker and Redis, doing the
same cleaning, dedup and writes, alternating, ``--repeat`` times each; the table shows the
median wall time, records/s and the ratio. A run with an empty topic measures the fixed
start-up cost of each (interpreter, imports, Kafka metadata), shown on its own row.

    python -m bench.alert_throughput [--alerts 100000] [--repeat 3]

With ``ALARMFLOW_KAFKA_BOOTSTRAP`` and ``ALARMFLOW_REDIS_URL`` set it uses those services;
otherwise it starts its own on free ports and stops them at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alarmflow.kafka_tools import ensure_topics, produce
from alarmflow.samples import sample_messages
from alarmflow.services import KafkaBroker, RedisServer, free_port

REPO = Path(__file__).resolve().parents[1]
RUNNERS = {
    "bytewax flow (-w 1)": [sys.executable, "-m", "bytewax.run", "flows.alert"],
    "plain loop": [sys.executable, "-m", "bench.plain_alert_loop"],
}


@contextmanager
def services() -> Iterator[tuple[str, str]]:
    if os.environ.get("ALARMFLOW_KAFKA_BOOTSTRAP") and os.environ.get("ALARMFLOW_REDIS_URL"):
        yield os.environ["ALARMFLOW_KAFKA_BOOTSTRAP"], os.environ["ALARMFLOW_REDIS_URL"]
        return
    with tempfile.TemporaryDirectory(prefix="alarmflow-bench-") as run_dir:
        kafka = KafkaBroker(free_port(), free_port(), Path(run_dir) / "kafka")
        redis_server = RedisServer(free_port(), Path(run_dir) / "redis")
        kafka.start()
        redis_server.start()
        try:
            yield kafka.bootstrap, redis_server.url(9)
        finally:
            kafka.stop()
            redis_server.stop()


def alert_environ(bootstrap: str, redis_url: str, topic: str, dlq: str, **extra: str) -> dict:
    """The environment of an alert flow reading ``topic`` from its beginning to its end under a
    fresh key prefix, metrics off; ``extra`` settings win."""
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO),
        ALARMFLOW_KAFKA_BOOTSTRAP=bootstrap,
        ALARMFLOW_REDIS_URL=redis_url,
        ALARMFLOW_KEY_PREFIX=f"bench{uuid.uuid4().hex[:8]}.ee",
        ALARMFLOW_ALERT_TOPICS=topic,
        ALARMFLOW_DLQ_TOPIC=dlq,
        ALARMFLOW_TAIL="0",
        ALARMFLOW_START="earliest",
        ALARMFLOW_METRICS_PORT="0",
    )
    env.update(extra)
    return env


def timed_run(command: list[str], bootstrap: str, redis_url: str, topic: str, dlq: str) -> float:
    env = alert_environ(bootstrap, redis_url, topic, dlq)
    started = time.perf_counter()
    subprocess.run(command, env=env, cwd=REPO, check=True, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with services() as (bootstrap, redis_url):
        name = f"bench{uuid.uuid4().hex[:8]}"
        topic, empty, dlq = f"{name}.alert", f"{name}.empty", f"{name}.dlq"
        ensure_topics(bootstrap, [topic, empty, dlq], partitions=3)
        produce(bootstrap, topic, sample_messages(args.alerts, int(time.time())))
        walls: dict[str, list[float]] = {label: [] for label in RUNNERS}
        startup: dict[str, list[float]] = {label: [] for label in RUNNERS}
        for _ in range(args.repeat):
            for label, command in RUNNERS.items():
                walls[label].append(timed_run(command, bootstrap, redis_url, topic, dlq))
                startup[label].append(timed_run(command, bootstrap, redis_url, empty, dlq))
    print(f"\n{args.alerts} alerts, 3 partitions, median of {args.repeat} runs each\n")
    print("| runner | wall s (runs) | start-up s | alerts/s (wall) | alerts/s (net) |")
    print("|---|---|---:|---:|---:|")
    rates = {}
    for label in RUNNERS:
        wall, start = statistics.median(walls[label]), statistics.median(startup[label])
        rates[label] = args.alerts / wall
        runs = " / ".join(f"{w:.2f}" for w in walls[label])
        print(
            f"| {label} | {runs} | {start:.2f} | {args.alerts / wall:,.0f} | "
            f"{args.alerts / max(wall - start, 1e-9):,.0f} |"
        )
    flow, plain = rates["bytewax flow (-w 1)"], rates["plain loop"]
    print(f"\nratio bytewax / plain (wall): {flow / plain:.2f}")


if __name__ == "__main__":
    main()
