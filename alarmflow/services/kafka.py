"""A single-node Apache Kafka broker (KRaft) from the official jars, on 127.0.0.1.

The jars come from Maven Central through ``services/kafka/pom.xml`` (``ensure_jars``); the
broker runs as ``java -cp 'lib/*' kafka.Kafka server.properties`` on the machine's Java 17,
with its data, ``server.log`` and console output (``kafka.out``) in its run directory. Besides
its plaintext listener it may have a SASL_SSL one (:class:`SecureListener`: PLAIN and
SCRAM-SHA-512 users, a PEM certificate) for the tests of secured connections. A
class-data-sharing archive of the classes a broker loads (``ensure_cds_archive``, made by
``scripts/setup``) roughly halves its start time.
"""

from __future__ import annotations

import base64
import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from alarmflow.services._process import (
    ManagedProcess,
    ServiceError,
    ensure_port_free,
    free_ports,
    port_open,
    require_binary,
)
from alarmflow.services.tls import Certificates

KAFKA_DIR = Path(__file__).resolve().parents[2] / "services" / "kafka"
LIB_DIR = KAFKA_DIR / "lib"
LOG4J_CONFIG = KAFKA_DIR / "log4j2.properties"
CDS_ARCHIVE = LIB_DIR / "kafka.jsa"
# The broker jars bring log4j-core but no SLF4J binding, without which the broker logs nothing.
SLF4J_BINDING = "org.apache.logging.log4j:log4j-slf4j-impl:2.24.3"
QUICK_COMPILER = "-XX:TieredStopAtLevel=1"
"""The JVM's quick compiler (C1) only: a broker that starts fast, for tests."""
JVM_FLAGS = [
    "-Xms256m",
    "-Xmx512m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    QUICK_COMPILER,
]
"""A small heap and the quick compiler: a broker that starts fast, for tests. The collector is
Kafka's own choice (G1, 20 ms pause goal): the serial collector stopped the broker for 14-92 ms
every two seconds or so at 6,000-8,000 messages/s (its GC log), which showed as the alert
flow's tail latency; G1 paused it for 22 ms at most. A broker for benchmarks drops the quick
compiler (``full_jit``)."""
READY_TIMEOUT_S = 90.0
TOPIC_TIMEOUT_S = 30.0


def jars_present() -> bool:
    """Whether ``services/kafka/lib`` has the broker jars and the SLF4J binding."""
    return all(any(LIB_DIR.glob(p)) for p in ("kafka_2.13-*.jar", "log4j-slf4j-impl-*.jar"))


def ensure_jars() -> None:
    """Fetch the broker jars and the SLF4J binding with Maven unless they are already there."""
    if jars_present():
        return
    mvn = [require_binary("mvn", "install Maven or run scripts/setup"), "-q", "-B"]
    pom = ["-f", str(KAFKA_DIR / "pom.xml")]
    copy = ["dependency:copy", f"-Dartifact={SLF4J_BINDING}", f"-DoutputDirectory={LIB_DIR}"]
    for command in ([*mvn, *pom, "package"], [*mvn, *pom, *copy]):
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise ServiceError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")


def _java(flags: Sequence[str], *args: str) -> list[str]:
    java = require_binary("java", "a Java 17 runtime is needed for Kafka: run scripts/setup")
    return [java, *flags, "-cp", f"{LIB_DIR}/*", *args]


def cds_archive_current() -> bool:
    """Whether the CDS archive exists and is newer than every jar it was made from."""
    if not CDS_ARCHIVE.exists():
        return False
    made = CDS_ARCHIVE.stat().st_mtime
    return all(jar.stat().st_mtime <= made for jar in LIB_DIR.glob("*.jar"))


def _default_jvm_flags(full_jit: bool) -> list[str]:
    flags = [flag for flag in JVM_FLAGS if not (full_jit and flag == QUICK_COMPILER)]
    if cds_archive_current():
        flags.append(f"-XX:SharedArchiveFile={CDS_ARCHIVE}")
    return flags


def ensure_cds_archive() -> None:
    """(Re)make the CDS archive from a broker's start and stop unless it is current.

    The archive is written under a temporary name, checked by a JVM that must map it, and
    only then renamed into place: a truncated archive crashes the JVM that maps it.
    """
    if cds_archive_current():
        return
    partial = CDS_ARCHIVE.with_name(f"kafka.{os.getpid()}.jsa.tmp")
    try:
        with tempfile.TemporaryDirectory(prefix="alarmflow-cds-") as run_dir:
            flags = [*JVM_FLAGS, f"-XX:ArchiveClassesAtExit={partial}"]
            broker = KafkaBroker(*free_ports(2), Path(run_dir), jvm_flags=flags)
            broker.start()
            broker.stop()
        check = [*JVM_FLAGS, "-Xshare:on", f"-XX:SharedArchiveFile={partial}"]
        done = subprocess.run(
            _java(check, "kafka.tools.StorageTool", "version"), capture_output=True, text=True
        )
        if done.returncode != 0:
            raise ServiceError(f"the new CDS archive does not load:\n{done.stdout}{done.stderr}")
        partial.replace(CDS_ARCHIVE)
    finally:
        partial.unlink(missing_ok=True)


def _cluster_id() -> str:
    """A random cluster id as Kafka makes them: URL-safe base64 of a UUID, not starting with
    ``-`` (which the storage tool would take for an option)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


@dataclass(frozen=True)
class SecureListener:
    """A SASL_SSL listener on ``port`` with the server certificate of ``certificates``, where
    each of ``users`` (name: password) may log in with PLAIN or SCRAM-SHA-512; and, with
    ``mtls_port``, an SSL listener there that requires a client certificate signed by the same
    CA."""

    port: int
    certificates: Certificates
    users: Mapping[str, str]
    mtls_port: int | None = None

    def listeners(self) -> str:
        mtls = "" if self.mtls_port is None else f",SSL://127.0.0.1:{self.mtls_port}"
        return f"SASL_SSL://127.0.0.1:{self.port}{mtls}"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def properties(self) -> dict[str, str]:
        plain_users = " ".join(f'user_{name}="{pw}"' for name, pw in self.users.items())
        key_store = {
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(self.certificates.key_and_certificate),
        }
        mtls = {
            "ssl.client.auth": "required",
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.certificates.ca),
            **key_store,
        }
        return {
            # Naming any listener's protocol drops the default map, which held CONTROLLER's.
            "listener.security.protocol.map": (
                "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL"
            ),
            "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-512",
            "listener.name.sasl_ssl.plain.sasl.jaas.config": (
                f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};"
            ),
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
            **{f"listener.name.sasl_ssl.{key}": value for key, value in key_store.items()},
            **(
                {f"listener.name.ssl.{key}": value for key, value in mtls.items()}
                if self.mtls_port is not None
                else {}
            ),
        }

    def format_args(self) -> list[str]:
        """StorageTool arguments that create the SCRAM credentials (KRaft keeps them in its
        metadata log, so they are made when the storage is formatted)."""
        return [
            arg
            for name, password in self.users.items()
            for arg in ("--add-scram", f"SCRAM-SHA-512=[name={name},password={password}]")
        ]


def _properties(
    port: int,
    controller_port: int,
    data_dir: Path,
    max_bytes: int,
    secure: SecureListener | None = None,
) -> str:
    listeners = f"PLAINTEXT://127.0.0.1:{port}"
    if secure is not None:
        listeners += f",{secure.listeners()}"
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "listeners": f"{listeners},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": listeners,
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
        **(secure.properties() if secure is not None else {}),
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


class KafkaBroker:
    """A KRaft broker+controller on ``port`` (clients) and ``controller_port``, and a SASL_SSL
    listener if ``secure`` is given.

    ``jvm_flags`` replace the default ones (``JVM_FLAGS``, plus the CDS archive when current).
    With ``full_jit`` the broker runs with the JVM's optimizing compiler, as a production broker
    does: slower to start and to warm up, then about half the CPU per message (ad hoc, 19,600
    messages/s through six partitions: 24-26 % of a core against 40-56 % with the quick
    compiler). Benchmarks use it, so that the broker takes no more of the shared cores from the
    runners than a production broker would.
    """

    def __init__(
        self,
        port: int,
        controller_port: int,
        run_dir: Path,
        message_max_bytes: int = 4 << 20,
        *,
        jvm_flags: Sequence[str] | None = None,
        full_jit: bool = False,
        secure: SecureListener | None = None,
    ) -> None:
        self.port = port
        self.secure = secure
        self.controller_port = controller_port
        self.run_dir = Path(run_dir)
        self.message_max_bytes = message_max_bytes
        self.jvm_flags = _default_jvm_flags(full_jit) if jvm_flags is None else list(jvm_flags)
        self._process = ManagedProcess(
            "kafka",
            self.run_dir,
            "kafka.Kafka",
            out_file=self.run_dir / "kafka.out",
            log_file=self.run_dir / "server.log",
        )

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self._process.log_file

    def running(self) -> bool:
        """Whether this run directory's broker process is alive."""
        return self._process.running()

    def answers(self) -> bool:
        """Whether a broker on ``port`` answers a metadata request."""
        return port_open(self.port) and bool(self._admin().list_topics(timeout=2).brokers)

    def start(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Start (formatting storage the first time), or reuse the broker already running here."""
        if self.running():
            self.wait_ready(timeout)
            return
        secure_ports = [] if self.secure is None else [self.secure.port, self.secure.mtls_port]
        for port in (self.port, self.controller_port, *secure_ports):
            if port is not None:
                ensure_port_free(port, "kafka")
        if not jars_present():
            raise ServiceError(
                f"the Kafka broker jars are missing from {LIB_DIR}: run scripts/setup "
                "(or alarmflow.services.kafka.ensure_jars())"
            )
        properties = self.run_dir / "server.properties"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        properties.write_text(
            _properties(
                self.port,
                self.controller_port,
                self.run_dir / "data",
                self.message_max_bytes,
                self.secure,
            )
        )
        self._format(properties)
        self._process.spawn(self._java("kafka.Kafka", str(properties)))
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Wait until the broker answers metadata requests; if it does not, stop it and raise
        a ServiceError (a RuntimeError) with the port and the tail of its log."""
        self._process.wait_ready(self.answers, timeout, f"metadata on port {self.port}")

    def stop(self) -> None:
        self._process.stop()

    def create_topics(
        self, names: Iterable[str], partitions: int = 3, timeout: float = TOPIC_TIMEOUT_S
    ) -> None:
        """Create the topics that do not exist yet and wait until metadata shows them all."""
        wanted = list(dict.fromkeys(names))
        admin = self._admin()
        existing = admin.list_topics(timeout=10).topics
        new = [NewTopic(name, partitions, 1) for name in wanted if name not in existing]
        for future in admin.create_topics(new, operation_timeout=timeout).values() if new else ():
            try:
                future.result()
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
        self._wait_for_topics(admin, wanted, timeout)

    def _wait_for_topics(self, admin: AdminClient, names: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            topics = admin.list_topics(timeout=10).topics
            missing = [
                name
                for name in names
                if name not in topics
                or topics[name].error is not None
                or any(p.leader < 0 for p in topics[name].partitions.values())
            ]
            if not missing:
                return
            if time.monotonic() > deadline:
                raise ServiceError(f"topics without leaders after {timeout:.0f}s: {missing}")
            time.sleep(0.1)

    def _admin(self) -> AdminClient:
        return AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})

    def _java(self, *args: str) -> list[str]:
        logging = [
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            f"-Dkafka.logs.dir={self.run_dir}",
            f"-XX:ErrorFile={self.run_dir}/hs_err_%p.log",
        ]
        return _java([*self.jvm_flags, *logging], *args)

    def _format(self, properties: Path) -> None:
        if (self.run_dir / "data" / "meta.properties").exists():
            return
        format_args = ["format", "--ignore-formatted", "-t", _cluster_id(), "-c", str(properties)]
        format_args += [] if self.secure is None else self.secure.format_args()
        command = self._java("kafka.tools.StorageTool", *format_args)
        done = subprocess.run(command, capture_output=True, text=True, cwd=self.run_dir)
        if done.returncode != 0:
            raise ServiceError(f"formatting Kafka storage failed:\n{done.stdout}{done.stderr}")
