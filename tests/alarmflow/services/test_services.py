"""The local services the tests, the demo and the benchmarks run on."""

from __future__ import annotations

import subprocess
import sys

import pytest
import redis
from confluent_kafka import Consumer, Producer, TopicPartition

from alarmflow.kafka_tools import ensure_topics
from alarmflow.services import KafkaBroker, RedisServer, ServiceError, free_port
from tests.flows.flowrun import REPO


def test_kafka_takes_a_two_mib_message_round_trip(kafka_broker, key_prefix):
    topic = f"{key_prefix}.big"
    ensure_topics(kafka_broker.bootstrap, [topic], partitions=1)
    payload = b"x" * (2 << 20)
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap, "message.max.bytes": 4 << 20})
    producer.produce(topic, payload)
    assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": kafka_broker.bootstrap, "group.id": "t"})
    consumer.assign([TopicPartition(topic, 0, 0)])
    message = consumer.poll(30)
    consumer.close()
    assert message is not None and message.error() is None
    assert message.value() == payload


def test_starting_a_running_service_reuses_it(kafka_broker, redis_server):
    pid = kafka_broker._process.pid()
    kafka_broker.start()
    redis_server.start()
    assert kafka_broker._process.pid() == pid
    assert redis.Redis.from_url(redis_server.url(0)).ping()


def test_a_taken_port_is_refused_with_a_clear_error(tmp_path, redis_server, kafka_broker):
    with pytest.raises(ServiceError, match=f"port {redis_server.port} .* already in use"):
        RedisServer(redis_server.port, tmp_path / "r").start()
    with pytest.raises(ServiceError, match=f"port {kafka_broker.port} .* already in use"):
        KafkaBroker(kafka_broker.port, free_port(), tmp_path / "k").start()


def test_cli_reports_status(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "alarmflow.services",
            "status",
            "--run-dir",
            str(tmp_path),
            "--kafka-port",
            str(free_port()),
            "--redis-port",
            str(free_port()),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "kafka" in done.stdout and "stopped" in done.stdout


def test_broker_properties_bind_loopback_only(kafka_broker):
    properties = (kafka_broker.run_dir / "server.properties").read_text()
    assert "listeners=PLAINTEXT://127.0.0.1:" in properties
    assert "0.0.0.0" not in properties
    assert isinstance(kafka_broker, KafkaBroker)
