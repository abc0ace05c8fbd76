"""Alert flow latency in tail mode: produce-to-visible-in-Redis at fixed offered rates.

The flow runs in tail mode (``ALARMFLOW_TAIL=1``, from the latest offsets). First a burst of
``--burst`` alerts sent as fast as the producer can measures the rate the flow drains a
backlog at. Then, for each offered rate, a fraction (``--fractions``) of that drain rate, a
producer sends valid alerts for ``--seconds`` at that rate, each stamped with its send time;
a watcher in a process of its own pops the alert list as alerts land (BLMPOP) and records
when each alert became visible. A rate is *sustained* when every alert sent was
visible within ``--slack`` seconds after the last one was sent and the p99 stayed under a
second; the run stops at the first rate that is not. The summary gives the highest sustained
rate as a share of the drain rate, and the latency percentiles at the step nearest half of it.

    python -m bench.alert_latency [--fractions 0.25 0.4 0.5 0.6 0.7 0.8 0.9 1.0]
                                  [--seconds 10] [--old DIR]

With ``--old`` (a checkout of old main, ``git worktree add /work/wt-old 33cd407``) old main's
flow is measured the same way in the same run. Services as in ``bench.alert_throughput``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import queue
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson
import redis
from confluent_kafka import Producer

from alarmflow.kafka_tools import ensure_topics
from bench.alert_throughput import PARTITIONS, REPO, alert_environ, services

SEND_EVERY_S = 0.001
SEND_MOST = 1000
POP_WAIT_S = 0.1
"""How long the watcher's pop blocks when the list is empty before it checks for its stop."""
POP_MOST = 10_000
STRATEGY = 201  # routes to one list: access.alert.201.2001
SUSTAINED_P99_MS = 1000


@dataclass(frozen=True)
class Step:
    rate: int
    sent: int
    seen: int
    latencies_ms: list[float]

    @property
    def sustained(self) -> bool:
        """Every alert seen within the slack, and the p99 under a second (a backlog that
        grows through the step shows as latency growing past that)."""
        return self.seen == self.sent and self.percentile(0.99) <= SUSTAINED_P99_MS

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def alert(seq: int, run: str) -> dict:
    return {
        "event_id": f"{run}-{seq}",
        "plugin_id": "bench",
        "alert_name": "CPU usage high",
        "bk_biz_id": 2,
        "strategy_id": STRATEGY,
        "status": "abnormal",
        "severity": 2,
        "target_type": "host",
        "target": f"10.0.{seq % 250}.{seq % 199 + 1}",
        "description": "latency probe",
        "metric": "system.cpu.usage",
        "tags": [{"key": "cpu", "value": "cpu-total"}],
        "time": int(time.time()),
    }


class Watcher:
    """Takes alerts off the list as they land and records each one's latency, in a process of
    its own: a blocking pop (BLMPOP) wakes it when the flow pushes, and no thread of this
    process (the producer's loop) holds the interpreter lock it would wait for. A thread here
    polling every 2 ms measured its own period (ad hoc) at 3.1 ms median, 10-12 ms p99 and up
    to 140 ms while the flow ran at 17,000 alerts/s (2026-12-07): delays it added to the
    latencies."""

    def __init__(self, redis_url: str, key: str) -> None:
        spawn = multiprocessing.get_context("spawn")  # not a fork of a process with threads
        self._found: multiprocessing.Queue = spawn.Queue()
        self._stop = spawn.Event()
        self._process = spawn.Process(
            target=_watch, args=(redis_url, key, self._found, self._stop), daemon=True
        )
        self._seen = 0
        self._latencies_ms: list[float] = []

    def start(self) -> None:
        self._process.start()

    @property
    def seen(self) -> int:
        """Alerts taken off the list since the last :meth:`take`."""
        while True:
            try:
                count, latencies = self._found.get_nowait()
            except queue.Empty:
                return self._seen
            self._seen += count
            self._latencies_ms += latencies

    def take(self) -> tuple[int, list[float]]:
        seen, latencies = self.seen, self._latencies_ms
        self._seen, self._latencies_ms = 0, []
        return seen, latencies

    def stop(self) -> None:
        self._stop.set()
        self._process.join(5)


def _watch(
    redis_url: str, key: str, found: multiprocessing.Queue, stop: multiprocessing.Event
) -> None:
    """The watcher's process: pop what the flow pushed, as soon as it is there; hand on how
    many alerts and the latency of each that carries its send time."""
    client = redis.Redis.from_url(redis_url)
    while not stop.is_set():
        popped = client.blmpop(POP_WAIT_S, 1, key, direction="RIGHT", count=POP_MOST)
        if not popped:
            continue
        now = time.time()
        entries = popped[1]
        sent = (orjson.loads(entry).get("sent_at") for entry in entries)
        found.put((len(entries), [(now - t) * 1000 for t in sent if t is not None]))


def offer(producer: Producer, topic: str, rate: int, seconds: float, run: str) -> int:
    """Send ``rate`` alerts per second for ``seconds`` (0 rate: as fast as possible, ``seconds``
    then counts alerts); return how many were sent. Every millisecond it sends what is due by
    then (up to :data:`SEND_MOST` at a time), each stamped with its send time: a sleep per
    alert took 36 µs of CPU per alert at 10,000/s, 16 at 30,000/s (ad hoc), a third to a half
    of a core this machine's flow could not use (2026-12-07)."""
    total = int(seconds) if rate == 0 else int(rate * seconds)
    started = time.perf_counter()
    sent = 0
    while sent < total:
        due = total if rate == 0 else min(total, int((time.perf_counter() - started) * rate) + 1)
        if due == sent:
            time.sleep(SEND_EVERY_S)
            continue
        for seq in range(sent, min(due, sent + SEND_MOST)):
            producer.produce(topic, orjson.dumps({**alert(seq, run), "sent_at": time.time()}))
            sent += 1
        producer.poll(0)
    producer.flush(30)
    return total


def wait_seen(watcher: Watcher, want: int, slack_s: float) -> tuple[int, list[float]]:
    """Wait up to ``slack_s`` for ``want`` alerts to be seen; what was seen and latencies."""
    deadline = time.monotonic() + slack_s
    while watcher.seen < want and time.monotonic() < deadline:
        time.sleep(0.005)
    return watcher.take()


def measure(label, checkout, args, bootstrap, redis_url) -> tuple[list[Step], float]:
    run = uuid.uuid4().hex[:8]
    topic, dlq, prefix = f"lat{run}.alert", f"lat{run}.dlq", f"lat{run}.ee"
    ensure_topics(bootstrap, [topic, dlq], partitions=PARTITIONS)
    env = alert_environ(
        bootstrap,
        redis_url,
        topic,
        dlq,
        ALARMFLOW_KEY_PREFIX=prefix,
        ALARMFLOW_TAIL="1",
        ALARMFLOW_START="latest",
        PYTHONPATH=str(checkout),
    )
    flow = subprocess.Popen(
        [sys.executable, "-m", "bytewax.run", "flows.alert"],
        env=env,
        cwd=checkout,
        stderr=subprocess.DEVNULL,
    )
    watcher = Watcher(redis_url, f"{prefix}.access.alert.{STRATEGY}.2001")
    watcher.start()
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1, "acks": 1})
    steps: list[Step] = []
    drain = float("nan")
    try:
        ready = time.monotonic() + 120
        while watcher.seen == 0 and time.monotonic() < ready:  # the flow is up and reading
            offer(producer, topic, 0, 1, f"probe{time.monotonic()}")
            time.sleep(0.5)
        watcher.take()
        started = time.perf_counter()
        sent = offer(producer, topic, 0, args.burst, "burst")
        if wait_seen(watcher, sent, 120)[0] == sent:
            drain = sent / (time.perf_counter() - started)
            for fraction in args.fractions:
                rate = max(100, round(drain * fraction / 100) * 100)
                sent = offer(producer, topic, rate, args.seconds, f"r{rate}")
                seen, latencies = wait_seen(watcher, sent, args.slack)
                steps.append(Step(rate, sent, seen, latencies))
                print(f"  {label}: {rate}/s sent {sent} seen {seen}", file=sys.stderr)
                if not steps[-1].sustained:
                    break
    finally:
        watcher.stop()
        flow.terminate()
        flow.wait(30)
    return steps, drain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--fractions", type=float, nargs="+", default=[0.25, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    )
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--slack", type=float, default=2.0)
    parser.add_argument("--burst", type=int, default=50_000)
    parser.add_argument("--old", type=Path, help="a checkout of old main (commit 33cd407)")
    args = parser.parse_args()
    flows = [("flow (-p 1)", REPO)] + ([("old main flow (-p 1)", args.old)] if args.old else [])
    results = {}
    with services() as (bootstrap, redis_url):
        for label, checkout in flows:
            results[label] = measure(label, checkout, args, bootstrap, redis_url)
    print(f"\ntail mode, {PARTITIONS} partitions, {args.seconds:.0f} s per offered rate\n")
    print("| runner | offered/s | seen | p50 ms | p95 ms | p99 ms | sustained |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for label, (steps, _) in results.items():
        for s in steps:
            print(
                f"| {label} | {s.rate:,} | {s.seen:,}/{s.sent:,} | {s.percentile(0.5):.0f} "
                f"| {s.percentile(0.95):.0f} | {s.percentile(0.99):.0f} "
                f"| {'yes' if s.sustained else 'no'} |"
            )
    print(
        "\n| runner | drain rate/s | highest sustained/s | sustained / drain "
        "| p50 / p95 / p99 ms at half the sustained rate |"
    )
    print("|---|---:|---:|---:|---|")
    for label, (steps, drain) in results.items():
        best = max((s.rate for s in steps if s.sustained), default=0)
        half = min(steps, key=lambda s: abs(s.rate - best / 2)) if steps else None
        at_half = (
            f"{half.percentile(0.5):.0f} / {half.percentile(0.95):.0f} / "
            f"{half.percentile(0.99):.0f} (at {half.rate:,}/s)"
            if half
            else "-"
        )
        print(f"| {label} | {drain:,.0f} | {best:,} | {best / drain:.2f} | {at_half} |")


if __name__ == "__main__":
    main()
