"""Every alarmflow metric, declared once with what it counts, and the one endpoint per process.

Names follow Prometheus conventions: ``alarmflow_`` prefix, ``_total`` counters, ``_seconds``
histograms, and only bounded labels (``flow``, ``topic``, ``reason``, ``kind``, ``stage``,
``function``, ``decision``). Workers of one process are threads sharing this registry; each
process serves it on ``ALARMFLOW_METRICS_PORT + process id`` so that ``-p``/``-i`` runs never
collide, and registers that endpoint for Prometheus's file discovery in
``ALARMFLOW_METRICS_TARGETS_DIR`` when it is set.
"""

from __future__ import annotations

import argparse
import atexit
import ipaddress
import json
import logging
import os
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import ParamSpec, TypeVar

from prometheus_client import Counter, Histogram, start_http_server
from prometheus_client.metrics import MetricWrapperBase

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

# Counter: Kafka messages read from a flow's input topics, by topic (consumer errors, which are
# not messages, are counted in alarmflow_rejected_total{reason="kafka_error"}).
CONSUMED = Counter(
    "alarmflow_consumed",
    "Kafka messages read from the flow's input topics, by topic.",
    ["flow", "topic"],
)
# Counter: records that were decoded and passed validation and cleaning (the rest are rejected).
CLEANED = Counter(
    "alarmflow_cleaned",
    "Records decoded, validated and cleaned (the others are rejected).",
    ["flow"],
)
# Counter: rejected input, by reason, counted when its dead-letter message is made (before the
# delivery that alarmflow_dlq_produced_total confirms).
REJECTED = Counter(
    "alarmflow_rejected",
    "Input rejected to the dead-letter topic, by reason.",
    ["flow", "reason"],
)
# Counter: valid records, or their writes, left out on purpose, by reason (expired, unmatched,
# duplicate, other_shard, qos and each flow's own reasons).
DROPPED = Counter(
    "alarmflow_dropped",
    "Valid records not written on purpose, by reason.",
    ["flow", "reason"],
)
# Counter: entries LPUSHed onto Redis data lists by records written for the first time (a
# replayed record writes nothing and is counted as dropped{reason="duplicate"}).
WRITTEN = Counter(
    "alarmflow_written",
    "Entries pushed onto Redis data lists by records written for the first time, by kind.",
    ["flow", "kind"],
)
# Counter: wake-up signals pushed onto signal lists (one already pending is not pushed again).
SIGNALS = Counter(
    "alarmflow_signals",
    "Wake-up signals pushed onto signal lists (one already pending is not pushed again).",
    ["flow"],
)
# Counter: seconds spent in each stage of a flow; divided by alarmflow_stage_items_total it is
# the time per item.
STAGE_SECONDS = Counter(
    "alarmflow_stage_seconds",
    "Seconds spent in each stage of the flow.",
    ["flow", "stage"],
)
# Counter: items each stage handled: records for per-record stages, records in the batches of
# the sink stages (redis, dlq, decisions, audit).
STAGE_ITEMS = Counter(
    "alarmflow_stage_items",
    "Items each stage handled (records; for sinks, the records in their batches).",
    ["flow", "stage"],
)
# Counter: dead-letter messages whose delivery the broker confirmed.
DLQ_PRODUCED = Counter(
    "alarmflow_dlq_produced",
    "Dead-letter messages whose delivery the broker confirmed.",
    ["flow"],
)
# Histogram: seconds of one attempt to run the push-once script on one sink batch, failed
# attempts included.
REDIS_BATCH_SECONDS = Histogram(
    "alarmflow_redis_batch_seconds",
    "Seconds per attempt to write one sink batch with the push-once script.",
    ["flow"],
    buckets=LATENCY_BUCKETS,
)
# Counter: failed attempts to write a sink batch. Each is retried after a backoff; when the last
# retry fails too, the flow stops and resumes from recovery.
REDIS_ERRORS = Counter(
    "alarmflow_redis_errors",
    "Failed attempts to write a sink batch to Redis (each is retried; after the last the flow "
    "stops).",
    ["flow"],
)
# Histogram: seconds from a Kafka message's timestamp to the write of its record, for records
# written for the first time.
END_TO_END_SECONDS = Histogram(
    "alarmflow_end_to_end_seconds",
    "Seconds from the Kafka message timestamp to its record's first Redis write.",
    ["flow"],
    buckets=LATENCY_BUCKETS,
)
# Counter: converge decisions, by converge function and decision (execute, skipped, sleep,
# waiting, shield, collect, suppressed).
CONVERGE_DECISIONS = Counter(
    "alarmflow_converge_decisions",
    "Converge decisions, by converge function and decision.",
    ["flow", "function", "decision"],
)

DEFINED: tuple[MetricWrapperBase, ...] = (
    CONSUMED,
    CLEANED,
    REJECTED,
    DROPPED,
    WRITTEN,
    SIGNALS,
    STAGE_SECONDS,
    STAGE_ITEMS,
    DLQ_PRODUCED,
    REDIS_BATCH_SECONDS,
    REDIS_ERRORS,
    END_TO_END_SECONDS,
    CONVERGE_DECISIONS,
)
"""Every alarmflow metric; nothing else in the code declares one."""

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


@dataclass(frozen=True)
class Endpoint:
    """Where a process serves its metrics: ``address``, ``base_port`` + its process id (no
    endpoint when ``base_port`` is 0), and the directory of Prometheus file-discovery targets
    it registers in (``None``: it registers nowhere)."""

    address: str
    base_port: int
    targets_dir: Path | None = None


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


def scrape_target(address: str, port: int) -> str:
    """The ``host:port`` Prometheus reaches an endpoint at: the address it listens on, or this
    host's name when it listens on every address."""
    host = socket.gethostname() if ipaddress.ip_address(address).is_unspecified else address
    return f"{host}:{port}"


def register_target(directory: Path, flow: str, target: str) -> Path:
    """Write ``target`` as one Prometheus ``file_sd`` entry labelled with ``flow`` into
    ``directory`` (atomically, as Prometheus watches the directory); return the file."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{flow}-{target.replace(':', '-')}.json"
    entry = [{"targets": [target], "labels": {"flow": flow}}]
    staged = path.with_name(f".{path.name}.tmp")
    staged.write_text(json.dumps(entry))
    staged.replace(path)
    return path


def serve(endpoint: Endpoint, flow: str) -> None:
    """Start this process's metrics endpoint once, and register it as a scrape target of
    ``flow`` until the process exits."""
    global _served
    with _served_lock:
        if _served or endpoint.base_port == 0:
            return
        _served = True
        port = endpoint.base_port + process_id()
        try:
            start_http_server(port, addr=endpoint.address)
        except OSError as exc:
            log.error("metrics endpoint on port %d not started: %s", port, exc)
            return
        log.info("metrics on :%d/metrics", port)
        if endpoint.targets_dir is not None:
            path = register_target(
                endpoint.targets_dir, flow, scrape_target(endpoint.address, port)
            )
            atexit.register(path.unlink, missing_ok=True)


def summary(flow: str) -> str:
    """This process's counts for ``flow`` on one line, e.g. for the log at end of input."""
    parts = []
    for metric in DEFINED:
        if not isinstance(metric, Counter) or metric in (STAGE_SECONDS, STAGE_ITEMS):
            continue
        for family in metric.collect():
            name = family.name.removeprefix("alarmflow_")
            for sample in family.samples:
                if sample.name.endswith("_total") and sample.labels.get("flow") == flow:
                    labels = sorted(sample.labels.items())
                    detail = ",".join(v for k, v in labels if k != "flow")
                    parts.append(f"{name}{'[' + detail + ']' if detail else ''}={sample.value:.0f}")
    return f"{flow}: " + " ".join(sorted(parts))
