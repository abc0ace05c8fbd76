"""Session services for the tests: a real Kafka broker and a real Redis on free ports.

They are started once per test session in their own temporary directories, so they never
touch a developer's running services. A service that cannot start fails the tests that need
it; nothing is ever skipped for a missing service.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from alarmflow.kafka_tools import ensure_topics
from alarmflow.services import KafkaBroker, RedisServer
from alarmflow.services import free_port as pick_free_port
from tests.flows.flowrun import FlowEnv


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    broker = KafkaBroker(pick_free_port(), pick_free_port(), tmp_path_factory.mktemp("kafka"))
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(pick_free_port(), tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def key_prefix() -> str:
    """A key prefix (and topic-name stem) no other test uses."""
    return f"t{uuid.uuid4().hex[:10]}.ee"


@pytest.fixture
def free_port() -> Callable[[], int]:
    return pick_free_port


@pytest.fixture
def make_flow_env(kafka_broker, redis_server, key_prefix) -> Callable[[int], FlowEnv]:
    """Makes this test's flow environment: its own alert and DLQ topics (with ``partitions``
    partitions each) on the session broker, Redis db 9, and its own key prefix."""

    def make(partitions: int = 3) -> FlowEnv:
        stem = key_prefix.split(".")[0]
        env = FlowEnv(
            kafka_broker.bootstrap,
            redis_server.url(9),
            key_prefix,
            {"ALERT": f"{stem}.alert"},
            f"{stem}.dlq",
        )
        ensure_topics(kafka_broker.bootstrap, [*env.topics.values(), env.dlq_topic], partitions)
        return env

    return make


@pytest.fixture
def flow_env(make_flow_env) -> FlowEnv:
    return make_flow_env(3)
