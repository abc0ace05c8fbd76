"""Prometheus metrics shared by every flow, and the one endpoint per process.

Names follow Prometheus conventions: ``alarmflow_`` prefix, ``_total`` counters, ``_seconds``
histograms, and only bounded labels (``flow``, ``topic``, ``reason``, ``kind``). Workers of
one process are threads sharing this registry; each process serves it on
``ALARMFLOW_METRICS_PORT + process id`` so that ``-p``/``-i`` runs never collide.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from time import perf_counter
from typing import ParamSpec, TypeVar

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

CONSUMED = Counter("alarmflow_consumed", "Messages read from Kafka.", ["flow", "topic"])
CLEANED = Counter("alarmflow_cleaned", "Records that passed parsing and cleaning.", ["flow"])
REJECTED = Counter(
    "alarmflow_rejected",
    "Messages rejected to the dead-letter topic, by reason.",
    ["flow", "reason"],
)
DROPPED = Counter(
    "alarmflow_dropped",
    "Valid records dropped on purpose, by reason (expired, unmatched, duplicate, qos, ...).",
    ["flow", "reason"],
)
WRITTEN = Counter("alarmflow_written", "Redis list entries written, by key kind.", ["flow", "kind"])
SIGNALS = Counter(
    "alarmflow_signals",
    "Wake-up signals pushed (a strategy already pending is not pushed).",
    ["flow"],
)
STAGE_SECONDS = Counter(
    "alarmflow_stage_seconds",
    "Time spent in each stage of a flow (divide by alarmflow_stage_items_total for per item).",
    ["flow", "stage"],
)
STAGE_ITEMS = Counter(
    "alarmflow_stage_items", "Items (records or batches) each stage handled.", ["flow", "stage"]
)
DLQ_PRODUCED = Counter(
    "alarmflow_dlq_produced", "Messages delivered to the dead-letter topic.", ["flow"]
)
REDIS_BATCH_SECONDS = Histogram(
    "alarmflow_redis_batch_seconds",
    "Time to run one Redis pipeline (one sink batch).",
    ["flow"],
    buckets=LATENCY_BUCKETS,
)
REDIS_ERRORS = Counter(
    "alarmflow_redis_errors",
    "Redis batch attempts that failed because Redis was unreachable or busy (then retried).",
    ["flow"],
)
# A gauge, not a counter: it says whether the flow is stalled on Redis right now. Each sink
# worker adds 1 when its Redis stops answering and takes it back when Redis answers again (or
# when it gives up after ALARMFLOW_REDIS_OUTAGE_S and the flow stops).
REDIS_WAITING: Gauge = Gauge(
    "alarmflow_redis_waiting",
    "Sink workers waiting for Redis to come back (0 when Redis answers).",
    ["flow"],
)
END_TO_END_SECONDS = Histogram(
    "alarmflow_end_to_end_seconds",
    "From the Kafka message timestamp to its Redis write.",
    ["flow"],
    buckets=LATENCY_BUCKETS,
)

P = ParamSpec("P")
R = TypeVar("R")


class Stage:
    """Where the time goes: seconds and items of one stage of one flow."""

    def __init__(self, flow: str, stage: str) -> None:
        self._seconds = STAGE_SECONDS.labels(flow, stage)
        self._items = STAGE_ITEMS.labels(flow, stage)

    def per_item(self, fn: Callable[P, R]) -> Callable[P, R]:
        """``fn``, timed on every call (one item each)."""

        def timed(*args: P.args, **kwargs: P.kwargs) -> R:
            started = perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self._seconds.inc(perf_counter() - started)
                self._items.inc()

        return timed

    @contextmanager
    def batch(self, items: int) -> Iterator[None]:
        """Time one batch of ``items``."""
        started = perf_counter()
        try:
            yield
        finally:
            self._seconds.inc(perf_counter() - started)
            self._items.inc(items)


_served_lock = threading.Lock()
_served = False


def process_id(argv: list[str] | None = None) -> int:
    """This process's Bytewax process id: ``BYTEWAX_PROCESS_ID``, else ``-i``, else 0."""
    if os.environ.get("BYTEWAX_PROCESS_ID"):
        return int(os.environ["BYTEWAX_PROCESS_ID"])
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("-i", "--process-id", type=int, default=0)
    known, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    return known.process_id


def serve(address: str, base_port: int) -> None:
    """Start this process's metrics endpoint once (no-op when ``base_port`` is 0)."""
    global _served
    with _served_lock:
        if _served or base_port == 0:
            return
        _served = True
        port = base_port + process_id()
        try:
            start_http_server(port, addr=address)
        except OSError as exc:
            log.error("metrics endpoint on port %d not started: %s", port, exc)
            return
        log.info("metrics on :%d/metrics", port)


def summary(flow: str) -> str:
    """This process's counts for ``flow`` on one line, e.g. for the log at end of input."""
    parts = []
    for metric in REGISTRY.collect():
        if not metric.name.startswith("alarmflow_") or metric.type != "counter":
            continue
        if metric.name.startswith("alarmflow_stage_"):
            continue
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.labels.get("flow") == flow:
                detail = ",".join(v for k, v in sorted(sample.labels.items()) if k != "flow")
                name = metric.name.removeprefix("alarmflow_")
                parts.append(f"{name}{'[' + detail + ']' if detail else ''}={sample.value:.0f}")
    return f"{flow}: " + " ".join(sorted(parts))


CONVERGE_DECISIONS = Counter(
    "alarmflow_converge_decisions",
    "Converge decisions, by converge function and decision.",
    ["flow", "function", "decision"],
)
