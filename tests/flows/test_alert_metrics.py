"""Consumer lag and end-to-end latency move as they should when the flow stops and resumes."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from alarmflow.kafka_tools import produce
from alarmflow.launch import init_recovery
from alarmflow.metrics import LATENCY_BUCKETS
from alarmflow.samples import sample_messages
from tests.flows.flowrun import bytewax_command, start, wait_until

pytestmark = pytest.mark.integration

# The latency bucket bound the gap must exceed: the backlog waits in Kafka longer than this.
GAP_S = 2.5
BACKLOG = 150_000
"""Enough for several of the test's reads of the metrics endpoint while the flow drains it, at
the fastest it drains here (40,000 a second and more)."""
assert GAP_S in LATENCY_BUCKETS


def samples(port: int) -> list:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return []
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def value(rows: list, name: str, **labels: str) -> float:
    return sum(
        s.value
        for s in rows
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def lags(rows: list) -> list[float]:
    return [s.value for s in rows if s.name == "alarmflow_kafka_consumer_lag"]


def no_lag(rows: list) -> bool:
    """Whether every partition is read to its end."""
    return bool(lags(rows)) and max(lags(rows)) == 0


def committed_epoch(recovery: Path) -> int:
    """The newest epoch the recovery store has committed: where a resume starts."""
    with sqlite3.connect(f"file:{recovery / 'part-0.sqlite3'}?mode=ro", uri=True) as db:
        return db.execute("SELECT coalesce(max(commit_epoch), 0) FROM commits").fetchone()[0]


def test_lag_grows_while_stopped_then_drains_and_latency_shows_the_gap(
    kafka_broker, flow_env, free_port, tmp_path
):
    recovery = tmp_path / "recovery"
    init_recovery(recovery, 1)
    port = free_port()
    environ = flow_env.environ(ALARMFLOW_TAIL="1", ALARMFLOW_METRICS_PORT=str(port))
    command = bytewax_command("flows.alert", "-r", str(recovery), "-s", "1", "-b", "0")

    first = start(command, environ, tmp_path / "first.log")
    produce(
        kafka_broker.bootstrap, flow_env.topics["ALERT"], sample_messages(2000, int(time.time()))
    )
    wait_until(
        lambda: value(samples(port), "alarmflow_consumed_total") == 2000, "the first 2000 read"
    )
    read_by = committed_epoch(recovery)
    wait_until(
        lambda: committed_epoch(recovery) > read_by and no_lag(samples(port)),
        "a commit after the last read, and no lag",
    )
    before = samples(port)
    assert value(before, "alarmflow_consumed_total") == 2000
    os.kill(first.pid, signal.SIGKILL)
    first.wait()

    stopped_at = time.time()
    backlog = produce(
        kafka_broker.bootstrap,
        flow_env.topics["ALERT"],
        sample_messages(BACKLOG, int(time.time()), 2),
    )
    wait_until(
        lambda: time.time() - stopped_at > GAP_S,
        f"the first records of the backlog to wait in Kafka longer than {GAP_S}s",
    )

    second = start(command, environ, tmp_path / "second.log")
    try:
        max_lag, rows = 0.0, []

        def drained() -> bool:
            nonlocal max_lag, rows
            rows = samples(port)
            max_lag = max([max_lag, *lags(rows)])
            return value(rows, "alarmflow_consumed_total") >= backlog and no_lag(rows)

        wait_until(drained, "the backlog to be read and the lag back at 0", 120)
        assert max_lag > 1000, "the backlog never showed as lag"
        slow = value(rows, "alarmflow_end_to_end_seconds_count") - value(
            rows, "alarmflow_end_to_end_seconds_bucket", le=str(GAP_S)
        )
        assert slow > 0, "records written after the gap should show its latency"
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(30)
