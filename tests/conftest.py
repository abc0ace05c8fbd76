"""Session services for the tests: a real Kafka broker and a real Redis on free ports.

They are started once per test session in their own temporary directories, so they never
touch a developer's running services. A service that cannot start fails the tests that need
it; nothing is ever skipped for a missing service.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from alarmflow.services import KafkaBroker, RedisServer
from alarmflow.services import free_port as pick_free_port


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
