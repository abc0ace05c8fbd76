"""Session services for the tests: a real Kafka broker and a real Redis on free ports.

They are started once per test session in their own temporary directories, so they never
touch a developer's running services, and stopped at its end. A service that cannot start
fails (errors) the tests that need it; nothing is ever skipped for a missing service.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
import redis

from alarmflow.services import KafkaBroker, RedisServer, free_ports
from alarmflow.services import free_port as pick_free_port
from tests.flows.flowrun import FlowEnv


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    broker = KafkaBroker(*free_ports(2), tmp_path_factory.mktemp("kafka"))
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(pick_free_port(), tmp_path_factory.mktemp("redis"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def key_prefix() -> str:
    """A Redis key prefix (whose first part also names topics) no other test uses."""
    return f"test{uuid.uuid4().hex[:8]}.ee"


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A client of the session's Redis, db 9, returning bytes; use it under ``key_prefix``."""
    client = redis.Redis.from_url(redis_server.url(9), decode_responses=False)
    yield client
    client.close()


@pytest.fixture
def service_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A client of the session's Redis, db 10 (bkmonitor's service keys); use it under
    ``key_prefix``."""
    client = redis.Redis.from_url(redis_server.url(10), decode_responses=False)
    yield client
    client.close()


@pytest.fixture
def kafka_topics(kafka_broker: KafkaBroker) -> Callable[..., list[str]]:
    """Makes this test's topics on the session broker: ``kafka_topics("in", "out",
    partitions=2)`` returns their names, ``t<uuid>.in`` and ``t<uuid>.out``."""
    stem = f"t{uuid.uuid4().hex[:8]}"

    def make(*names: str, partitions: int = 3) -> list[str]:
        topics = [f"{stem}.{name}" for name in names]
        kafka_broker.create_topics(topics, partitions)
        return topics

    return make


@pytest.fixture
def free_port() -> Callable[[], int]:
    return pick_free_port


@pytest.fixture
def make_flow_env(
    kafka_broker: KafkaBroker, redis_server: RedisServer, key_prefix: str
) -> Callable[..., FlowEnv]:
    """Makes this test's flow environment: its own input topic for ``kind`` (an access type)
    and DLQ topic, with ``partitions`` partitions each, on the session broker; Redis db 9;
    and its own key prefix."""

    def make(partitions: int = 3, kind: str = "ALERT") -> FlowEnv:
        stem = key_prefix.split(".")[0]
        env = FlowEnv(
            kafka_broker.bootstrap,
            redis_server.url(9),
            key_prefix,
            {kind: f"{stem}.{kind.lower()}"},
            f"{stem}.dlq",
        )
        kafka_broker.create_topics([*env.topics.values(), env.dlq_topic], partitions)
        return env

    return make


@pytest.fixture
def flow_env(make_flow_env: Callable[..., FlowEnv]) -> FlowEnv:
    return make_flow_env(3)
