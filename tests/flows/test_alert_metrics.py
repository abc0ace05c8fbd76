"""Consumer lag and end-to-end latency move as they should when the flow stops and resumes."""

from __future__ import annotations

import os
import signal
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from alarmflow.kafka_tools import produce
from alarmflow.launch import init_recovery
from alarmflow.samples import sample_messages
from tests.flows.flowrun import bytewax_command, start

pytestmark = pytest.mark.integration


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
    deadline = time.monotonic() + 60
    while value(samples(port), "alarmflow_consumed_total") < 2000 and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2.5)  # a snapshot, and librdkafka statistics after the last batch
    before = samples(port)
    assert value(before, "alarmflow_consumed_total") == 2000
    assert max(s.value for s in before if s.name == "bytewax_kafka_consumer_lag") == 0
    os.kill(first.pid, signal.SIGKILL)
    first.wait()

    stopped_at = time.monotonic()
    backlog = produce(
        kafka_broker.bootstrap,
        flow_env.topics["ALERT"],
        sample_messages(40000, int(time.time()), 2),
    )
    time.sleep(max(0.0, 3 - (time.monotonic() - stopped_at)))

    second = start(command, environ, tmp_path / "second.log")
    try:
        max_lag, rows = 0.0, []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            rows = samples(port)
            lags = [s.value for s in rows if s.name == "bytewax_kafka_consumer_lag"]
            max_lag = max([max_lag, *lags])
            if value(rows, "alarmflow_consumed_total") >= backlog and lags and max(lags) == 0:
                break
            time.sleep(0.1)
        assert max_lag > 1000, "the backlog never showed as lag"
        assert max(s.value for s in rows if s.name == "bytewax_kafka_consumer_lag") == 0
        slow = value(rows, "alarmflow_end_to_end_seconds_count") - value(
            rows, "alarmflow_end_to_end_seconds_bucket", le="2.5"
        )
        assert slow > 0, "records written after the gap should show its latency"
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(30)
