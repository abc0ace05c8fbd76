"""Alert memory: the alert flow's RSS over time while it takes always-new alerts (a memory
soak, not a test).

Runs the flow (tailing) for ``--seconds`` while producing ``--rate`` sample alerts per second
(the usual mix: duplicates, expired, unmatched and malformed ones included), each valid one
with a new event id, and prints every ``--every`` seconds what it consumed (its metrics) and
its process's RSS. The alert flow keeps no state per alert in the process (deduplication is a
marker in Redis), so its RSS should level off after the first batches.

    python -m bench.alert_memory [--seconds 180] [--rate 1000] [--every 15]

With ``--large N`` it measures instead the flow's peak RSS while Redis takes no writes
(``CLIENT PAUSE ... WRITE`` for ``--seconds``) and N alerts of about 840 KB each wait in the
topic: the flow reads on only until its writer's queue is full, in records or in bytes.
``--before DIR`` runs another checkout's flow on the same topic after it, for a ratio.

    python -m bench.alert_memory --large 3000 --seconds 40 [--before DIR]

With ``ALARMFLOW_KAFKA_BOOTSTRAP`` and ``ALARMFLOW_REDIS_URL`` set it uses those services;
otherwise it starts its own on free ports and stops them at the end.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson
import redis

from alarmflow.kafka_tools import ensure_topics, produce
from alarmflow.replay import consumed
from alarmflow.samples import sample_messages
from alarmflow.services import free_port
from bench.alert_throughput import REPO, alert_environ, services


def rss_mib(pid: int) -> float:
    """The resident set size of process ``pid``, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def fresh(messages: list[bytes], first: int) -> list[bytes]:
    """``messages`` with each valid alert given a new event id, counting from ``first``."""
    out = []
    for n, message in enumerate(messages, start=first):
        try:
            alert = orjson.loads(message)
        except orjson.JSONDecodeError:
            out.append(message)
            continue
        if isinstance(alert, dict) and "event_id" in alert:
            alert["event_id"] = f"soak-{n}"
            message = orjson.dumps(alert)
        out.append(message)
    return out


def soak(seconds: int, rate: int, every: int) -> None:
    with services() as (bootstrap, redis_url):
        stem = f"mem{uuid.uuid4().hex[:8]}"
        topic, dlq = f"{stem}.alert", f"{stem}.dlq"
        ensure_topics(bootstrap, [topic, dlq], 3)
        port = free_port()
        env = alert_environ(
            bootstrap, redis_url, topic, dlq, ALARMFLOW_TAIL="1", ALARMFLOW_METRICS_PORT=str(port)
        )
        command = [sys.executable, "-m", "bytewax.run", "flows.alert"]
        flow = subprocess.Popen(command, env=env, cwd=REPO, stderr=subprocess.DEVNULL)
        started = time.time()
        produced = 0
        print("| wall s | alerts produced | consumed | RSS MiB |")
        print("|---|---:|---:|---:|")
        try:
            for second in range(seconds):
                batch = list(sample_messages(rate, int(time.time()), seed=second))
                produced += produce(bootstrap, topic, fresh(batch, produced))
                time.sleep(max(0.0, started + second + 1 - time.time()))
                if (second + 1) % every == 0:
                    print(
                        f"| {second + 1} | {produced:,} | {consumed(port):,.0f} | "
                        f"{rss_mib(flow.pid):.0f} |",
                        flush=True,
                    )
        finally:
            flow.kill()
            flow.wait()


LARGE_TAGS = 14
"""Tags of 60,000 characters each (a string may have 65,536) that make a large alert."""


def large(messages: list[bytes]) -> list[bytes]:
    """The valid alerts of ``messages``, each with a new event id and about 840 KB of tags."""
    out = []
    for message in fresh(messages, 0):
        try:
            alert = orjson.loads(message)
        except orjson.JSONDecodeError:
            continue
        if isinstance(alert, dict) and isinstance(alert.get("tags"), list):
            big = [{"key": f"big{i}", "value": "y" * 60_000} for i in range(LARGE_TAGS)]
            alert["tags"] += big
            out.append(orjson.dumps(alert))
    return out


def peak_rss(checkout: Path, env: dict[str, str], seconds: int, redis_url: str) -> float:
    """The peak RSS (MiB) of ``checkout``'s alert flow over ``seconds`` of Redis taking no
    writes."""
    client = redis.Redis.from_url(redis_url)
    command = [sys.executable, "-m", "bytewax.run", "flows.alert"]
    env = dict(env, PYTHONPATH=str(checkout), ALARMFLOW_KEY_PREFIX=f"mem{uuid.uuid4().hex[:8]}")
    flow = subprocess.Popen(command, env=env, cwd=checkout, stderr=subprocess.DEVNULL)
    peak = 0.0
    try:
        client.execute_command("CLIENT", "PAUSE", seconds * 1000, "WRITE")
        ends = time.monotonic() + seconds
        while time.monotonic() < ends and flow.poll() is None:
            peak = max(peak, rss_mib(flow.pid))
            time.sleep(0.25)
    finally:
        client.execute_command("CLIENT", "UNPAUSE")
        flow.kill()
        flow.wait()
    return peak


def large_alerts(count: int, seconds: int, before: Path | None) -> None:
    with services() as (bootstrap, redis_url):
        stem = f"mem{uuid.uuid4().hex[:8]}"
        topic, dlq = f"{stem}.alert", f"{stem}.dlq"
        ensure_topics(bootstrap, [topic, dlq], 1)
        alerts = large(list(sample_messages(count, int(time.time()))))
        produce(bootstrap, topic, alerts)
        env = alert_environ(bootstrap, redis_url, topic, dlq, ALARMFLOW_TAIL="1")
        size = sum(map(len, alerts)) / len(alerts) / 1000
        print(f"{len(alerts):,} alerts of {size:,.0f} KB, Redis taking no writes for {seconds} s")
        print("| flow | peak RSS MiB |")
        print("|---|---:|")
        rows = [("this checkout", REPO)] + ([] if before is None else [(str(before), before)])
        for name, checkout in rows:
            print(f"| {name} | {peak_rss(checkout, env, seconds, redis_url):,.0f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=180)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--every", type=int, default=15)
    parser.add_argument("--large", type=int, default=0, help="large alerts instead of a soak")
    parser.add_argument("--before", type=Path, help="another checkout, with --large")
    args = parser.parse_args()
    if args.large:
        large_alerts(args.large, args.seconds, args.before)
    else:
        soak(args.seconds, args.rate, args.every)


if __name__ == "__main__":
    main()
