"""The local services the tests, the demo and the benchmarks run on."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from alarmflow.services import KafkaBroker, RedisServer, ServiceError, free_port, free_ports
from alarmflow.services.__main__ import parse_args
from alarmflow.services.kafka import QUICK_COMPILER

REPO = Path(__file__).resolve().parents[3]


def produce(bootstrap: str, topic: str, payload: bytes) -> KafkaError | None:
    """Produce one message; return the delivery error, if any."""
    errors: list[KafkaError | None] = []
    producer = Producer({"bootstrap.servers": bootstrap, "message.max.bytes": 8 << 20})
    producer.produce(topic, payload, on_delivery=lambda err, _msg: errors.append(err))
    assert producer.flush(30) == 0
    return errors[0]


def services_cli(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "alarmflow.services", *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)


def test_kafka_round_trips_a_two_mib_message(
    kafka_broker: KafkaBroker, kafka_topics: Callable[..., list[str]]
) -> None:
    (topic,) = kafka_topics("big", partitions=1)
    payload = bytes(range(256)) * (2 << 20 >> 8)
    assert produce(kafka_broker.bootstrap, topic, payload) is None
    consumer = Consumer({"bootstrap.servers": kafka_broker.bootstrap, "group.id": topic})
    consumer.assign([TopicPartition(topic, 0, 0)])
    message = consumer.poll(30)
    consumer.close()
    assert message is not None and message.error() is None
    assert message.value() == payload


def test_kafka_refuses_messages_above_message_max_bytes(
    kafka_broker: KafkaBroker, kafka_topics: Callable[..., list[str]]
) -> None:
    (topic,) = kafka_topics("huge", partitions=1)
    error = produce(kafka_broker.bootstrap, topic, b"x" * (kafka_broker.message_max_bytes + 1))
    assert error is not None and error.code() == KafkaError.MSG_SIZE_TOO_LARGE


def test_create_topics_is_idempotent_and_waits_for_leaders(
    kafka_broker: KafkaBroker, key_prefix: str
) -> None:
    topics = [f"{key_prefix}.a", f"{key_prefix}.b"]
    kafka_broker.create_topics(topics, partitions=2)
    kafka_broker.create_topics(topics, partitions=2)
    consumer = Consumer({"bootstrap.servers": kafka_broker.bootstrap, "group.id": key_prefix})
    metadata = consumer.list_topics(timeout=10).topics
    consumer.close()
    for topic in topics:
        assert all(p.leader == 1 for p in metadata[topic].partitions.values())
        assert len(metadata[topic].partitions) == 2


def test_redis_answers_ping(redis_client: redis.Redis, key_prefix: str) -> None:
    assert redis_client.ping()
    redis_client.set(f"{key_prefix}:k", b"\xff")
    assert redis_client.get(f"{key_prefix}:k") == b"\xff"


def test_starting_a_running_service_again_reuses_it(
    kafka_broker: KafkaBroker, redis_server: RedisServer
) -> None:
    pid_files = [kafka_broker.run_dir / "kafka.pid", redis_server.run_dir / "redis.pid"]
    pids = [path.read_text() for path in pid_files]
    again = (
        KafkaBroker(kafka_broker.port, kafka_broker.controller_port, kafka_broker.run_dir),
        RedisServer(redis_server.port, redis_server.run_dir),
    )
    started = time.monotonic()
    for service in again:
        assert service.running()
        service.start()
    assert time.monotonic() - started < 10
    assert [path.read_text() for path in pid_files] == pids


def test_a_taken_port_is_refused_with_a_clear_error(
    tmp_path: Path, kafka_broker: KafkaBroker, redis_server: RedisServer
) -> None:
    with pytest.raises(ServiceError, match=f"port {redis_server.port} .* already in use"):
        RedisServer(redis_server.port, tmp_path / "r").start()
    with pytest.raises(ServiceError, match=f"port {kafka_broker.port} .* already in use"):
        KafkaBroker(kafka_broker.port, free_port(), tmp_path / "k").start()


def test_a_broker_that_dies_starting_is_reported_with_its_log(tmp_path: Path) -> None:
    broker = KafkaBroker(*free_ports(2), tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "meta.properties").write_text("version=1\nnode.id=7\n")
    with pytest.raises(ServiceError, match=f"(?s)exited while starting.*{broker.port}.*ERROR"):
        broker.start()
    assert not broker.running()


def test_cli_starts_reports_and_stops_redis(tmp_path: Path) -> None:
    ports = ["--redis-port", str(free_port()), "--kafka-port", str(free_port())]
    options = ["--run-dir", str(tmp_path), *ports]
    try:
        up = services_cli("up", "--no-kafka", *options)
        assert up.returncode == 0, up.stderr
        assert "redis  started" in up.stdout and "redis.log" in up.stdout
        again = services_cli("up", "--no-kafka", *options)
        assert "redis  already running" in again.stdout
        status = services_cli("status", *options)
        assert status.returncode == 0, status.stderr
        assert "kafka  stopped" in status.stdout and "redis  running" in status.stdout
    finally:
        down = services_cli("down", *options)
    assert down.returncode == 0, down.stderr
    assert "redis  stopped" in down.stdout and "kafka  not running" in down.stdout


def test_a_benchmark_broker_runs_the_optimizing_compiler(tmp_path: Path) -> None:
    """Tests start the broker with the quick compiler only; benchmarks (``full_jit``, the
    command's ``--full-jit``) with the JVM's optimizing one, and otherwise the same flags."""
    quick = KafkaBroker(*free_ports(2), tmp_path)
    full = KafkaBroker(*free_ports(2), tmp_path, full_jit=True)
    assert QUICK_COMPILER in quick.jvm_flags
    assert full.jvm_flags == [flag for flag in quick.jvm_flags if flag != QUICK_COMPILER]
    assert parse_args(["up", "--full-jit"]).full_jit
    assert not parse_args(["up"]).full_jit


@pytest.mark.parametrize(
    ("option", "value", "environ"),
    [
        ("--kafka-port", "70000", {}),
        ("--redis-port", "0", {}),
        ("--kafka-controller-port", "x", {}),
        ("--kafka-port", "70000", {"ALARMFLOW_KAFKA_PORT": "70000"}),
        ("--redis-port", "65536", {"ALARMFLOW_REDIS_PORT": "65536"}),
    ],
)
def test_a_port_outside_1_to_65535_is_a_usage_error(
    option: str,
    value: str,
    environ: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, port in environ.items():
        monkeypatch.setenv(name, port)
    with pytest.raises(SystemExit) as exit_:
        parse_args(["up"] if environ else ["up", option, value])
    assert exit_.value.code == 2
    assert (
        capsys.readouterr()
        .err.splitlines()[-1]
        .endswith(f"argument {option}: expected a port from 1 to 65535, not {value!r}")
    )


def test_the_highest_port_is_a_port() -> None:
    assert parse_args(["up", "--kafka-port", "65535"]).kafka_port == 65535
