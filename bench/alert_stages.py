"""Where one alert's time goes: each stage of the alert flow's work timed on its own, in one
process, over the same sample alerts (Redis from ``ALARMFLOW_REDIS_URL``, or a private one).
Then the C extension against the Python it stands for, side by side: the cleaning
(``clean_alert`` against ``clean_alert_in_python``) and the packing of the batches' script calls
(``CommandPacker`` against redis-py's hiredis serializer), CPU time, best of alternating rounds.

    python -m bench.alert_stages [--alerts 20000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import redis
from redis.connection import HiredisRespSerializer

from alarmflow.config import BUNDLED_STRATEGIES, settings_or_exit
from alarmflow.connections import CommandPacker, redis_client
from alarmflow.heap import settle_heap
from alarmflow.samples import sample_messages
from alarmflow.services import RedisServer, free_port
from operators import _native
from operators.alert import clean_alert, clean_alert_in_python, is_expired
from operators.bounds import decode_object
from operators.rejects import Rejected, SourceRecord
from operators.routing import AlertRouter
from operators.strategy import load_strategy_file
from state.idempotent import OncePusher, Push
from state.keys import Backend
from state.writes import AlertWrites

BATCH = 1000


def timed(label: str, count: int, work: Callable[[], object], rows: list) -> object:
    started = time.perf_counter()
    result = work()
    rows.append((label, (time.perf_counter() - started) / count * 1e6))
    return result


def keep(fn: Callable, items: list) -> list:
    out = []
    for item in items:
        try:
            out.append(fn(item))
        except Rejected:
            continue
    return out


ROUNDS = 5


def c_against_python(
    label: str, count: int, c: Callable[[], object], python: Callable[[], object], rows: list
) -> None:
    """CPU µs per message of ``c`` and ``python``, each the best of alternating rounds."""
    best = {c: float("inf"), python: float("inf")}
    for _ in range(ROUNDS):
        for work in best:
            started = time.process_time()
            work()
            best[work] = min(best[work], (time.process_time() - started) / count * 1e6)
    rows.append((label, best[c], best[python]))


def sample_pushes(count: int, now: float, seed: int = 7) -> list[Push]:
    """The Redis writes of ``count`` sample messages' alerts under a fresh key prefix, as the
    flow makes them (the bundled strategies)."""
    messages = sample_messages(count, int(now), seed)
    records = [SourceRecord("t", 0, i, m) for i, m in enumerate(messages)]
    router = AlertRouter(load_strategy_file(BUNDLED_STRATEGIES))
    writes = AlertWrites(f"bench{uuid.uuid4().hex[:8]}.ee", 600)
    events = keep(lambda d: clean_alert(d, now), keep(lambda r: decode_object(r, 1 << 20), records))
    return [writes(e, t) for e in events if (t := router.route(e))]


def spec(op: str, ttl: int, param: str, backend: str) -> str:
    """A write's script argument as a pusher of database 9 spells it."""
    return f"{op} 9 {ttl} {param}"


def compare(count: int) -> list[tuple[str, float, float]]:
    now = time.time()
    records = [SourceRecord("t", 0, i, m) for i, m in enumerate(sample_messages(count, int(now)))]
    decoded = keep(lambda r: decode_object(r, 1 << 20), records)
    pushes = sample_pushes(count, now)
    calls = []
    for start in range(0, len(pushes), BATCH):
        keys, args = _native.flatten_pushes(pushes[start : start + BATCH], {}, spec)
        calls.append(("EVALSHA", "0" * 40, len(keys), *keys, *args))
    settle_heap()
    rows: list[tuple[str, float, float]] = []
    c_against_python(
        "clean",
        count,
        lambda: keep(lambda d: clean_alert(d, now), decoded),
        lambda: keep(lambda d: clean_alert_in_python(d, now), decoded),
        rows,
    )
    packer, serializer = CommandPacker(), HiredisRespSerializer()
    c_against_python(
        "pack the script calls",
        count,
        lambda: [packer.pack(*call) for call in calls],
        lambda: [serializer.pack(*call) for call in calls],
        rows,
    )
    return rows


def run(client: redis.Redis, count: int) -> list[tuple[str, float]]:
    now = time.time()
    records = [SourceRecord("t", 0, i, m) for i, m in enumerate(sample_messages(count, int(now)))]
    router = AlertRouter(load_strategy_file(BUNDLED_STRATEGIES))
    prefix = f"bench{uuid.uuid4().hex[:8]}.ee"
    pusher = OncePusher(client, {Backend.QUEUE: 9})
    settle_heap()  # the collector as a flow runs it, not sweeping the stages' lists each time
    rows: list[tuple[str, float]] = []
    decoded = timed(
        "decode JSON", count, lambda: keep(lambda r: decode_object(r, 1 << 20), records), rows
    )
    events = timed(
        "clean (Event.clean, count_md5)",
        count,
        lambda: keep(lambda d: clean_alert(d, now), decoded),
        rows,
    )
    fresh = timed("expiry", count, lambda: [e for e in events if not is_expired(e, now)], rows)
    routed = timed("route", count, lambda: [(e, router.route(e)) for e in fresh], rows)
    writes = AlertWrites(prefix, 600)
    pushes = timed("build writes", count, lambda: [writes(e, t) for e, t in routed if t], rows)
    timed(
        "Redis script, batches of 1000",
        count,
        lambda: [pusher.push(pushes[i : i + BATCH]) for i in range(0, len(pushes), BATCH)],
        rows,
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=20_000)
    args = parser.parse_args()
    if os.environ.get("ALARMFLOW_REDIS_URL"):
        settings = settings_or_exit()
        rows = run(redis_client(settings.redis_url, settings), args.alerts)
    else:
        with tempfile.TemporaryDirectory() as run_dir:
            server = RedisServer(free_port(), Path(run_dir))
            server.start()
            try:
                rows = run(redis_client(server.url(9)), args.alerts)
            finally:
                server.stop()
    pairs = compare(args.alerts)
    print(f"\n{args.alerts} sample alerts, microseconds per input message\n")
    print("| stage | µs per message |\n|---|---:|")
    for label, micros in rows:
        print(f"| {label} | {micros:.1f} |")
    print(f"| total | {sum(m for _, m in rows):.1f} |")
    print(
        f"\nThe C extension against the Python it stands for, CPU µs per message (best of {ROUNDS})"
    )
    print("\n| work | C | Python | Python / C |\n|---|---:|---:|---:|")
    for label, c, python in pairs:
        print(f"| {label} | {c:.2f} | {python:.2f} | {python / c:.1f}x |")


if __name__ == "__main__":
    main()
