"""A single-node Apache Kafka broker (KRaft) from the official jars, on 127.0.0.1.

The jars come from Maven Central through ``services/kafka/pom.xml`` (``ensure_jars``); the
broker runs as ``java -cp 'lib/*' kafka.Kafka server.properties`` on the machine's Java 17,
with data and logs in its run directory.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import uuid
from pathlib import Path

from confluent_kafka.admin import AdminClient

from alarmflow.services._process import (
    ManagedProcess,
    ServiceError,
    ensure_port_free,
    port_open,
)

KAFKA_DIR = Path(__file__).resolve().parents[2] / "services" / "kafka"
LIB_DIR = KAFKA_DIR / "lib"
READY_TIMEOUT_S = 90.0
JVM_FLAGS = ["-Xms128m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"]


def ensure_jars() -> None:
    """Fetch the broker jars with Maven unless they are already there."""
    if any(LIB_DIR.glob("kafka_2.13-*.jar")):
        return
    if shutil.which("mvn") is None:
        raise ServiceError("Maven (mvn) is not installed: run scripts/setup")
    subprocess.run(["mvn", "-q", "-B", "-f", str(KAFKA_DIR / "pom.xml"), "package"], check=True)


def _properties(port: int, controller_port: int, data_dir: Path, max_bytes: int) -> str:
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "log.dirs": str(data_dir),
        "num.partitions": "3",
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "3",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "min.insync.replicas": "1",
        "group.initial.rebalance.delay.ms": "0",
        "message.max.bytes": str(max_bytes),
        "replica.fetch.max.bytes": str(max_bytes),
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


class KafkaBroker:
    """A KRaft broker+controller on ``port`` (clients) and ``controller_port``."""

    def __init__(
        self, port: int, controller_port: int, run_dir: Path, message_max_bytes: int = 4 << 20
    ) -> None:
        self.port = port
        self.controller_port = controller_port
        self.run_dir = Path(run_dir)
        self.message_max_bytes = message_max_bytes
        self._process = ManagedProcess("kafka", self.run_dir)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self._process.log_file

    def _answers(self) -> bool:
        if not port_open(self.port):
            return False
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        return bool(admin.list_topics(timeout=2).brokers)

    def _java(self, *args: str) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise ServiceError("java is not installed: a Java 17 runtime is needed for Kafka")
        return [
            java,
            *JVM_FLAGS,
            f"-Dlog4j2.configurationFile={KAFKA_DIR / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.run_dir}",
            "-cp",
            f"{LIB_DIR}/*",
            *args,
        ]

    def _format(self, properties: Path) -> None:
        if (self.run_dir / "data" / "meta.properties").exists():
            return
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        done = subprocess.run(
            self._java(
                "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(properties)
            ),
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise ServiceError(f"formatting Kafka storage failed:\n{done.stdout}{done.stderr}")

    def start(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Start (formatting storage the first time), or reuse the broker already running here."""
        if self._process.pid() is not None and self._answers():
            return
        for port in (self.port, self.controller_port):
            ensure_port_free(port, "kafka")
        ensure_jars()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        properties = self.run_dir / "server.properties"
        properties.write_text(
            _properties(
                self.port, self.controller_port, self.run_dir / "data", self.message_max_bytes
            )
        )
        self._format(properties)
        self._process.spawn(self._java("kafka.Kafka", str(properties)))
        self._process.wait_ready(self._answers, timeout, f"metadata on {self.bootstrap}")

    def stop(self) -> None:
        self._process.stop()
