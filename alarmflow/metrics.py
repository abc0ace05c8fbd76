"""Every alarmflow metric, declared once with what it counts, and the one endpoint per process.

Names follow Prometheus conventions: ``alarmflow_`` prefix, ``_total`` counters, ``_seconds``
histograms, and only bounded labels (``flow``, ``topic``, ``partition``, ``reason``, ``kind``,
``stage``, ``function``, ``decision``). Workers of one process are threads sharing this
registry; each process serves it on ``ALARMFLOW_METRICS_PORT + process id`` so that
``-p``/``-i`` runs never collide, and registers that endpoint for Prometheus's file discovery in
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
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import ParamSpec, TypeVar

from prometheus_client import Counter, Gauge, Histogram, start_http_server
from prometheus_client.metrics import MetricWrapperBase

from alarmflow.config import ConfigError

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


def _counter(name: str, documentation: str, *labels: str) -> Counter:
    """A counter labelled by ``flow`` and ``labels``; Prometheus shows it as ``{name}_total``."""
    return Counter(name, documentation, ["flow", *labels])


def _histogram(name: str, documentation: str) -> Histogram:
    """A latency histogram labelled by ``flow``."""
    return Histogram(name, documentation, ["flow"], buckets=LATENCY_BUCKETS)


# Counter. Consumer errors are not messages: they count as rejected{reason="kafka_error"}.
CONSUMED = _counter(
    "alarmflow_consumed", "Kafka messages read from the flow's input topics, by topic.", "topic"
)
# Counter. Records that fail any of these are rejected instead.
CLEANED = _counter("alarmflow_cleaned", "Records decoded, validated and cleaned.")
# Counter, counted when the dead-letter message is made; alarmflow_dlq_produced_total counts
# its confirmed delivery.
REJECTED = _counter(
    "alarmflow_rejected", "Input rejected to the dead-letter topic, by reason.", "reason"
)
# Counter; the reasons are operators.drops.Drop.
DROPPED = _counter(
    "alarmflow_dropped", "Valid records not written on purpose, by reason.", "reason"
)
# Counter. A replayed record writes nothing and counts as dropped{reason="duplicate"}.
WRITTEN = _counter(
    "alarmflow_written",
    "Entries pushed onto Redis data lists by records written for the first time, by kind.",
    "kind",
)
# Counter. Signals go after their data, in the same script call.
SIGNALS = _counter(
    "alarmflow_signals",
    "Wake-up signals pushed onto signal lists (one already pending is not pushed again).",
)
# Counter; divided by alarmflow_stage_items_total it is the time per item.
STAGE_SECONDS = _counter("alarmflow_stage_seconds", "Seconds spent in each stage.", "stage")
# Counter. Per-record stages count records; sink stages (redis, dlq, decisions, audit) count
# the records of their batches.
STAGE_ITEMS = _counter(
    "alarmflow_stage_items",
    "Items each stage handled (records; for sinks, the records in their batches).",
    "stage",
)
# Counter. A delivery that fails stops the flow instead.
DLQ_PRODUCED = _counter(
    "alarmflow_dlq_produced", "Dead-letter messages whose delivery the broker confirmed."
)
# Histogram, failed attempts included.
REDIS_BATCH_SECONDS = _histogram(
    "alarmflow_redis_batch_seconds",
    "Seconds per attempt to write one sink batch with the push-once script.",
)
# Counter. Each failed attempt (Redis unreachable, busy or read-only, or fewer replicas than
# ALARMFLOW_REDIS_MIN_REPLICAS acknowledging) is retried with backoff for up to
# ALARMFLOW_REDIS_OUTAGE_S; after that the flow stops and resumes from recovery.
REDIS_ERRORS = _counter(
    "alarmflow_redis_errors",
    "Failed attempts to write a sink batch to Redis because Redis was unavailable (retried).",
)
# Gauge, not a counter: whether the flow is stalled on Redis right now. Each sink worker adds 1
# when Redis stops taking its writes and takes it back when Redis does again, or when it gives
# up after ALARMFLOW_REDIS_OUTAGE_S and the flow stops.
REDIS_WAITING: Gauge = Gauge(
    "alarmflow_redis_waiting",
    "Sink workers waiting for Redis to take their writes again (0 when it does).",
    ["flow"],
)
# Gauge, per input topic: 1 while the broker says the topic is gone (deleted; librdkafka then
# says nothing to a consumer of assigned partitions), 0 once it is there again; asked every 30 s
# (flows/kafka_io.py TopicWatch). The flow waits for the topic meanwhile.
INPUT_MISSING: Gauge = Gauge(
    "alarmflow_input_missing",
    "1 while an input topic is gone from the broker (the flow waits for it), else 0.",
    ["flow", "topic"],
)
# Gauge per input partition: the partition's high watermark less the offset the flow reads
# next, as the broker's last fetch response gave it (flows/kafka_io.py _RecordBatches), set at
# each poll of the partition. It grows while the flow falls behind, and stays put while the
# flow waits for Redis or the broker (nothing polls then).
CONSUMER_LAG: Gauge = Gauge(
    "alarmflow_kafka_consumer_lag",
    "Messages of an input partition not read yet (its high watermark less the next offset).",
    ["flow", "topic", "partition"],
)
# Histogram, of records written for the first time.
END_TO_END_SECONDS = _histogram(
    "alarmflow_end_to_end_seconds",
    "Seconds from the Kafka message timestamp to its record's first Redis write.",
)
# Counter; decisions are execute, skipped, sleep, waiting, shield, collect and suppressed.
CONVERGE_DECISIONS = _counter(
    "alarmflow_converge_decisions",
    "Converge decisions, by converge function and decision.",
    "function",
    "decision",
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
    REDIS_WAITING,
    INPUT_MISSING,
    CONSUMER_LAG,
    END_TO_END_SECONDS,
    CONVERGE_DECISIONS,
)
"""Every alarmflow metric; nothing else in the code declares one."""

P = ParamSpec("P")
R = TypeVar("R")


def observe_all(histogram: Histogram, values: Iterable[float]) -> None:
    """Observe each of ``values`` in ``histogram`` (one labelled child): the buckets and sum
    that ``observe`` of each value gives, for one lock per bucket instead of two per value.
    (It adds to the child's own bucket and sum values, those ``observe`` adds to.)"""
    bounds = histogram._upper_bounds  # ends with +Inf
    counts = [0] * len(bounds)
    total = 0.0
    for value in values:
        counts[bisect_left(bounds, value)] += 1  # the first bound >= value, as observe finds
        total += value
    histogram._sum.inc(total)
    for bucket, count in zip(histogram._buckets, counts, strict=True):
        if count:
            bucket.inc(count)


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


def make_targets_dir(endpoint: Endpoint) -> None:
    """Make the targets directory of an endpoint that will serve, at start; raise
    :class:`~alarmflow.config.ConfigError` if it cannot be made (a file of that name, no
    permission)."""
    if endpoint.base_port == 0 or endpoint.targets_dir is None:
        return
    try:
        endpoint.targets_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"ALARMFLOW_METRICS_TARGETS_DIR={str(endpoint.targets_dir)!r}: expected a directory, "
            f"or a path where one can be made ({exc.strerror})"
        ) from None


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
        except (OSError, OverflowError) as exc:  # OverflowError: base port + id above 65535
            log.error("metrics endpoint on port %d not started: %s", port, exc)
            return
        log.info("metrics on :%d/metrics", port)
        if endpoint.targets_dir is not None:
            target = scrape_target(endpoint.address, port)
            try:
                path = register_target(endpoint.targets_dir, flow, target)
            except OSError as exc:
                log.error("metrics target %s not registered: %s", target, exc)
                return
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
