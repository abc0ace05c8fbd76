"""librdkafka's logs and errors through Python logging, one line per change: on a virtual clock,
and with a real broker stopped under a running flow."""

from __future__ import annotations

import logging
import signal
import time
from pathlib import Path

import pytest
from confluent_kafka import KafkaError

from alarmflow.kafka_logs import SUMMARY, OncePerChange, kind_of
from alarmflow.kafka_tools import produce
from alarmflow.samples import sample_messages
from alarmflow.services import KafkaBroker, free_ports
from tests.flows.flowrun import FlowEnv, bytewax_command, start
from tests.flows.test_redis_outage import metric, wait_for

REFUSED = (
    "Connect to ipv4#127.0.0.1:{port} failed: Connection refused (after {ms}ms in state CONNECT)"
)


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def quiet_logger(request):
    logger = logging.getLogger(f"test.kafka_logs.{request.node.name}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    handler = Collect()
    logger.addHandler(handler)
    clock = {"now": 100.0}
    limiter = OncePerChange(logger, lambda: clock["now"], remind_s=30, quiet_s=15, ticking=False)
    logger.addFilter(limiter)
    return logger, handler.lines, limiter, clock


def librdkafka(logger: logging.Logger, client: int, broker: str, text: str, level: int = 40):
    """A record as confluent-kafka logs it: facility, client name, librdkafka's text."""
    thread = f"[thrd:{broker}]: {broker}: "
    logger.log(level, "%s [%s] %s", "FAIL", f"rdkafka#consumer-{client}", thread + text)


def test_an_outage_of_a_thousand_lines_is_three(quiet_logger):
    logger, lines, limiter, clock = quiet_logger
    for i in range(1000):
        clock["now"] = 100 + i * 0.04  # 40 s of reconnection attempts from three clients
        broker = ("127.0.0.1:9092/bootstrap", "127.0.0.1:9092/1", "GroupCoordinator")[i % 3]
        librdkafka(logger, i % 3, broker, REFUSED.format(port=9092, ms=i % 7))
        if i % 25 == 0:
            limiter.tick()
    clock["now"] += 16
    assert not limiter.tick()

    assert len(lines) == 3, lines
    refused = "FAIL 127.0.0.1:9092/bootstrap: Connect to ipv4#127.0.0.1:9092 failed: Connection"
    assert lines[0].startswith(f"Kafka: {refused}")
    assert (
        lines[1].startswith(f"Kafka: still '{refused}") and "750 more in the last 30s" in lines[1]
    )
    assert lines[2].startswith(f"Kafka: no more '{refused}") and "(1000 in 40s)" in lines[2]


def test_each_kind_is_said_once_and_a_lone_line_has_no_end(quiet_logger):
    logger, lines, limiter, clock = quiet_logger
    librdkafka(logger, 1, "b:1/1", "Disconnected: connection closed by peer (after 7328ms)", 20)
    librdkafka(logger, 2, "b:1/1", "Disconnected: connection closed by peer (after 6863ms)", 20)
    librdkafka(logger, 1, "b:1/1", REFUSED.format(port=1, ms=0))
    clock["now"] += 16
    limiter.tick()

    assert [line.split(" b:1/1: ")[0] for line in lines] == [
        "Kafka: FAIL",
        "Kafka: FAIL",
        "Kafka: no more 'FAIL",
    ]
    assert "Disconnected" in lines[0] and "Connection refused" in lines[1]
    assert "Disconnected" in lines[2] and "(2 in 0s)" in lines[2]


def test_an_error_event_and_the_log_line_of_one_failure_are_one_kind():
    text = REFUSED.format(port=1, ms=0)
    error = KafkaError(KafkaError._TRANSPORT, f"127.0.0.1:1/bootstrap: {text}")
    logged = f"[thrd:127.0.0.1:1/bootstrap]: 127.0.0.1:1/bootstrap: {text}"
    assert kind_of(error.str()) == kind_of(logged)
    assert kind_of("1/1 brokers are down") == "N/N brokers are down"
    suppressed = text.replace("CONNECT)", "CONNECT, 3 identical error(s) suppressed)")
    assert kind_of(suppressed) == kind_of(text)


def test_the_filter_lets_its_own_lines_through(quiet_logger):
    logger, lines, _, _ = quiet_logger
    logger.info("%s", "a summary", extra={SUMMARY: True})
    logger.info("%s", "a summary", extra={SUMMARY: True})
    assert lines == ["a summary", "a summary"]


def all_clear(log: Path) -> bool:
    return any(
        "Kafka: no more" in line and "Connection refused" in line
        for line in log.read_text().splitlines()
    )


@pytest.mark.integration
def test_a_broker_stopped_under_a_running_flow_is_a_handful_of_lines(
    redis_server, key_prefix, tmp_path: Path, free_port
):
    broker = KafkaBroker(*free_ports(2), tmp_path / "kafka")
    broker.start()
    try:
        stem = key_prefix.split(".")[0]
        env = FlowEnv(
            broker.bootstrap,
            redis_server.url(9),
            key_prefix,
            {"ALERT": f"{stem}.alert"},
            f"{stem}.dlq",
        )
        broker.create_topics([f"{stem}.alert", f"{stem}.dlq"], 3)
        now = int(time.time())
        produce(broker.bootstrap, f"{stem}.alert", list(sample_messages(300, now, seed=1)))
        port = free_port()
        log = tmp_path / "flow.log"
        proc = start(
            bytewax_command("flows.alert"),
            env.environ(ALARMFLOW_TAIL="1", ALARMFLOW_METRICS_PORT=str(port)),
            log,
        )
        consumed = "alarmflow_consumed_total"
        wait_for(lambda: metric(port, consumed) == 300, 60, "the first messages")
        before = len(log.read_text().splitlines())
        stopped = time.monotonic()
        broker.stop()
        time.sleep(20)  # the outage: every client retries all along
        broker.start()
        # A reminder per 30 s while the broker is away (its restart is slow on a busy machine).
        reminders = int((time.monotonic() - stopped) / 30) + 1
        produce(broker.bootstrap, f"{stem}.alert", list(sample_messages(300, now, seed=2)))
        wait_for(lambda: metric(port, consumed) == 600, 60, "the messages after the outage")
        wait_for(lambda: all_clear(log), 90, "the all-clear")
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    finally:
        broker.stop()

    lines = log.read_text().splitlines()[before:]
    assert not [line for line in lines if line.startswith("%")], "raw librdkafka lines"
    kafka = [line for line in lines if "alarmflow.kafka:" in line]
    assert 2 <= len(kafka) <= 4 * (2 + reminders), "\n".join(kafka)
    refused = [line for line in kafka if "Connection refused" in line]
    # It started, perhaps reminders (the outage lasts while the broker starts again), it ended.
    assert 2 <= len(refused) <= 2 + reminders, "\n".join(kafka)
    assert all("Kafka: still" in line for line in refused[1:-1]), "\n".join(kafka)
    assert "Kafka: no more" in refused[-1]
