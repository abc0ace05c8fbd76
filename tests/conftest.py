"""Session services for the tests: a real Kafka broker and a real Redis on free ports.

They are started once per test session in their own temporary directories, so they never
touch a developer's running services, and stopped at its end. A service that cannot start
fails (errors) the tests that need it; nothing is ever skipped for a missing service.
"""

from __future__ import annotations

import importlib.util
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
import redis

from alarmflow.services import KafkaBroker, RedisServer, free_ports
from alarmflow.services import free_port as pick_free_port
from alarmflow.services.kafka import SecureListener
from alarmflow.services.tls import Certificates, make_certificates
from flows import input_end
from operators import windows
from tests.flows.flowrun import BASELINE, FlowEnv, export_commit


@pytest.fixture(autouse=True)
def flow_not_stopping() -> None:
    """Each test starts with this process's flow not stopping: a sink that an earlier test
    closed before the end of its input sets :func:`flows.input_end.stopping` for the process."""
    input_end.stopping().clear()


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
def own_redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test's own (to refuse writes, or for a ``maxmemory`` of its own)."""
    server = RedisServer(pick_free_port(), tmp_path / "own-redis")
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def baseline_checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The code of main before the performance work (:data:`~tests.flows.flowrun.BASELINE`),
    to run a flow as it was: ``run(command, env, baseline_checkout)``."""
    return export_commit(BASELINE, tmp_path_factory.mktemp("baseline"))


@pytest.fixture(scope="session")
def baseline_module(baseline_checkout: Path) -> Callable[[str], ModuleType]:
    """A module of :func:`baseline_checkout` by its path, e.g. ``"operators/records.py"``,
    loaded under a name of its own (its imports are today's modules): to compare a function
    with what it was."""

    def load(path: str) -> ModuleType:
        name = "baseline_" + path.removesuffix(".py").replace("/", "_")
        spec = importlib.util.spec_from_file_location(name, baseline_checkout / path)
        assert spec is not None and spec.loader is not None
        if name not in sys.modules:
            module = sys.modules[name] = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        return sys.modules[name]

    return load


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


@dataclass(frozen=True)
class SecureServices:
    """A Kafka broker with a SASL_SSL listener and an SSL one that requires client certificates
    (its plaintext port is for the test's own topic set-up), a TLS-only Redis with one ACL user
    and another that requires client certificates, their certificates, a CA that did not sign
    them, and the passwords: secrets the tests look for in everything a run prints."""

    kafka: KafkaBroker
    listener: SecureListener
    redis: RedisServer
    mtls_redis: RedisServer
    certificates: Certificates
    untrusted: Certificates
    kafka_user: str
    kafka_password: str
    redis_password: str

    def environ(self, mechanism: str = "SCRAM-SHA-512") -> dict[str, str]:
        """The security settings of a flow that uses both services."""
        return {
            "ALARMFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "ALARMFLOW_KAFKA_SASL_MECHANISM": mechanism,
            "ALARMFLOW_KAFKA_SASL_USERNAME": self.kafka_user,
            "ALARMFLOW_KAFKA_SASL_PASSWORD": self.kafka_password,
            "ALARMFLOW_KAFKA_SSL_CA_LOCATION": str(self.certificates.ca),
            "ALARMFLOW_REDIS_SSL_CA_LOCATION": str(self.certificates.ca),
        }


@pytest.fixture(scope="session")
def secure_services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureServices]:
    base = tmp_path_factory.mktemp("secure")
    certificates = make_certificates(base / "certs")
    kafka_password, redis_password = (f"{name}-{uuid.uuid4().hex}" for name in ("kp", "rp"))
    port, controller_port, secure_port, mtls_port, redis_port, mtls_redis_port = free_ports(6)
    users = {"alarmflow": kafka_password}
    listener = SecureListener(secure_port, certificates, users, mtls_port)
    broker = KafkaBroker(port, controller_port, base / "kafka", secure=listener)
    users = {"alarmflow": redis_password}
    server = RedisServer(redis_port, base / "redis", tls=certificates, users=users)
    mtls_server = RedisServer(
        mtls_redis_port, base / "mtls-redis", tls=certificates, client_certificates=True
    )
    try:
        broker.start()
        server.start()
        mtls_server.start()
        yield SecureServices(
            broker,
            listener,
            server,
            mtls_server,
            certificates,
            make_certificates(base / "untrusted", "someone-else"),
            "alarmflow",
            kafka_password,
            redis_password,
        )
    finally:
        mtls_server.stop()
        server.stop()
        broker.stop()


@pytest.fixture
def secure_flow_env(secure_services: SecureServices, key_prefix: str) -> FlowEnv:
    """A flow environment on the secured services: SASL_SSL Kafka, TLS Redis as an ACL user
    (add ``secure_services.environ()`` to its settings)."""
    stem = key_prefix.split(".")[0]
    env = FlowEnv(
        secure_services.listener.bootstrap,
        secure_services.redis.url(9),
        key_prefix,
        {"ALERT": f"{stem}.alert"},
        f"{stem}.dlq",
    )
    secure_services.kafka.create_topics([*env.topics.values(), env.dlq_topic], 3)
    return env


@pytest.fixture
def unlucky_13(monkeypatch: pytest.MonkeyPatch) -> None:
    """Aggregating a window bucket that holds the value 13 fails, as a bug nobody foresaw
    would (``operators.windows.aggregate``)."""
    aggregate = windows.aggregate

    def failing(method: windows.AggMethod, values: list[float]) -> float | int:
        if 13.0 in values:
            raise KeyError("unlucky")
        return aggregate(method, values)

    monkeypatch.setattr(windows, "aggregate", failing)
