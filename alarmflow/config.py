"""alarmflow's configuration: environment variables, validated once at start.

Names and defaults are documented in ``docs/configuration.md``. A file named by
``ALARMFLOW_CONFIG`` (``KEY=VALUE`` lines, ``#`` comments) may add values; the environment
wins. Every bad value is reported on one line naming the variable, the value and what is
expected, and all of them are reported together.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

from operators.bounds import TimeWindow
from operators.hashring import Shard
from state.keys import Backend

ACCESS_TYPES = ("ALERT", "EVENT", "INCIDENT", "DATA", "REAL_TIME_DATA", "ACTION")
SAMPLES = Path(__file__).resolve().parent.parent / "samples"
BUNDLED_STRATEGIES = SAMPLES / "strategies.json"
BUNDLED_HOSTS = SAMPLES / "hosts.json"

T = TypeVar("T")


class ConfigError(ValueError):
    """One or more configuration values are invalid; the message has one line per value."""


@dataclass(frozen=True)
class StartPosition:
    """Where to read partitions with no recovered offset: ``earliest``, ``latest``, an
    ``offset`` (every partition) or a ``time`` (epoch ms, resolved per partition)."""

    kind: str
    value: int = 0


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap: str
    redis_url: str
    redis_service_url: str
    redis_cache_url: str
    key_prefix: str
    strategies: str
    hosts: str
    topics: Mapping[str, tuple[str, ...]]
    start: StartPosition
    tail: bool
    dlq_topic: str
    max_message_bytes: int
    metrics_port: int
    metrics_addr: str
    dedup_ttl: int
    hash_ring_nodes: tuple[str, ...]
    hash_ring_node: str
    decision_topic: str
    audit_topic: str
    converge_lock: bool
    max_past_s: int
    max_future_s: int

    def topics_for(self, access_type: str) -> tuple[str, ...]:
        return self.topics[access_type.upper()]

    def redis_dbs(self) -> dict[Backend, int]:
        """The database of each backend on the queue server (writes ``SELECT`` them)."""
        return {
            Backend.QUEUE: _db_of(self.redis_url),
            Backend.SERVICE: _db_of(self.redis_service_url),
            Backend.CACHE: _db_of(self.redis_cache_url),
        }

    def time_window(self) -> TimeWindow:
        """The event times accepted around now (``ALARMFLOW_MAX_PAST_S``/``_FUTURE_S``)."""
        return TimeWindow(self.max_past_s, self.max_future_s)

    def shard(self) -> Shard | None:
        """This deployment's share of the hash ring; ``None`` when sharding is off."""
        if not self.hash_ring_nodes:
            return None
        return Shard(self.hash_ring_nodes, self.hash_ring_node)


def _read_file(path: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ConfigError(f"ALARMFLOW_CONFIG={path}: line {number} is not KEY=VALUE")
        values[key.strip()] = value.strip()
    return values


def _bootstrap(value: str) -> str:
    for server in value.split(","):
        host, sep, port = server.strip().rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError("expected host:port[,host:port...]")
    return value


def _address(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError("expected an IP address to listen on, e.g. 127.0.0.1 or 0.0.0.0") from None
    return value


def _redis_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("redis", "rediss", "unix") or not (parts.netloc or parts.path):
        raise ValueError("expected a redis:// , rediss:// or unix:// URL")
    try:
        _db_of(value)
    except ValueError:
        raise ValueError("expected a whole database number (/N or ?db=N)") from None
    return value


def _db_of(url: str) -> int:
    """The database number a Redis URL names (``/N`` or ``?db=N``; 0 when it names none)."""
    parts = urlsplit(url)
    query = dict(pair.partition("=")[::2] for pair in parts.query.split("&") if pair)
    if parts.scheme == "unix":
        return int(query.get("db", "0") or 0)
    path = parts.path.strip("/")
    return int(path) if path.isdigit() else int(query.get("db", "0") or 0)


def _server_of(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return (parts.scheme, parts.path if parts.scheme == "unix" else parts.netloc)


def _same_server(queue_url: str, db: int) -> str:
    """The queue URL's server with another database (bkmonitor: service 10, cache 8)."""
    parts = urlsplit(queue_url)
    if parts.scheme == "unix":
        return f"{queue_url.split('?')[0]}?db={db}"
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, ""))


def _nonempty(value: str) -> str:
    if not value.strip():
        raise ValueError("expected a non-empty string")
    return value


def _topics(value: str) -> tuple[str, ...]:
    topics = tuple(t.strip() for t in value.split(",") if t.strip())
    if not topics:
        raise ValueError("expected a comma-separated list of topic names")
    return topics


def _flag(value: str) -> bool:
    if value not in ("0", "1"):
        raise ValueError("expected 0 or 1")
    return value == "1"


def _int_range(low: int, high: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        if not value.strip().isdigit() or not low <= int(value) <= high:
            raise ValueError(f"expected a whole number from {low} to {high}")
        return int(value)

    return parse


def _start(value: str) -> StartPosition:
    kind, _, rest = value.partition(":")
    if value in ("earliest", "latest"):
        return StartPosition(value)
    if kind == "offset" and rest.isdigit():
        return StartPosition("offset", int(rest))
    if kind == "time":
        try:
            moment = datetime.fromisoformat(rest.replace("Z", "+00:00"))
        except ValueError:
            moment = None
        if rest.isdigit():
            return StartPosition("time", int(rest) * 1000)
        if moment is not None and moment.tzinfo is not None:
            return StartPosition("time", int(moment.timestamp() * 1000))
    raise ValueError(
        "expected earliest, latest, offset:N, time:EPOCH_SECONDS or time:ISO-8601 with a zone"
    )


def _strategies(value: str) -> str:
    if value != "redis" and not Path(value).is_file():
        raise ValueError("expected a readable JSON file of strategies, or 'redis'")
    return value


def _hosts(value: str) -> str:
    if not Path(value).is_file():
        raise ValueError("expected a readable JSON file of CMDB hosts")
    return value


def _node_names(value: str) -> tuple[str, ...]:
    nodes = tuple(node.strip() for node in value.split(",") if node.strip())
    if len(set(nodes)) != len(nodes):
        raise ValueError("expected distinct comma-separated deployment names")
    return nodes


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every setting; raise :class:`ConfigError` listing each bad one."""
    env = dict(os.environ if environ is None else environ)
    source: dict[str, str] = {}
    if env.get("ALARMFLOW_CONFIG"):
        source.update(_read_file(env["ALARMFLOW_CONFIG"]))
    source.update({k: v for k, v in env.items() if k.startswith("ALARMFLOW_")})
    errors: list[str] = []

    def get(name: str, default: str, parse: Callable[[str], T]) -> T:
        raw = source.get(name, default)
        try:
            return parse(raw)
        except ValueError as exc:
            errors.append(f"{name}={raw!r}: {exc}")
            return None  # type: ignore[return-value]

    default_redis = "redis://127.0.0.1:6379/9"
    redis_url = get("ALARMFLOW_REDIS_URL", default_redis, _redis_url)
    # Derived defaults follow a valid queue URL; a bad one is reported once, not three times.
    queue_server = redis_url or default_redis
    settings = Settings(
        kafka_bootstrap=get("ALARMFLOW_KAFKA_BOOTSTRAP", "127.0.0.1:9092", _bootstrap),
        redis_url=redis_url,
        redis_service_url=get(
            "ALARMFLOW_REDIS_SERVICE_URL",
            _same_server(queue_server, 10),
            _redis_url,
        ),
        redis_cache_url=get(
            "ALARMFLOW_REDIS_CACHE_URL",
            _same_server(queue_server, 8),
            _redis_url,
        ),
        key_prefix=get("ALARMFLOW_KEY_PREFIX", "bk_bkmonitorv3.ee", _nonempty),
        strategies=get("ALARMFLOW_STRATEGIES", str(BUNDLED_STRATEGIES), _strategies),
        hosts=get("ALARMFLOW_HOSTS", str(BUNDLED_HOSTS), _hosts),
        topics={
            kind: get(f"ALARMFLOW_{kind}_TOPICS", f"alarmflow.{kind.lower()}", _topics)
            for kind in ACCESS_TYPES
        },
        start=get("ALARMFLOW_START", "latest", _start),
        tail=get("ALARMFLOW_TAIL", "1", _flag),
        dlq_topic=get("ALARMFLOW_DLQ_TOPIC", "alarmflow.dlq", _nonempty),
        max_message_bytes=get("ALARMFLOW_MAX_MESSAGE_BYTES", "1048576", _int_range(1, 1 << 30)),
        metrics_port=get("ALARMFLOW_METRICS_PORT", "9108", _int_range(0, 65535)),
        metrics_addr=get("ALARMFLOW_METRICS_ADDR", "127.0.0.1", _address),
        dedup_ttl=get("ALARMFLOW_DEDUP_TTL", "600", _int_range(1, 7 * 86400)),
        hash_ring_nodes=get("ALARMFLOW_HASH_RING_NODES", "", _node_names),
        hash_ring_node=get("ALARMFLOW_HASH_RING_NODE", "", str.strip),
        decision_topic=get("ALARMFLOW_DECISION_TOPIC", "alarmflow.converge.decisions", _nonempty),
        audit_topic=get("ALARMFLOW_AUDIT_TOPIC", "alarmflow.converge.audit", _nonempty),
        converge_lock=get("ALARMFLOW_CONVERGE_LOCK", "0", _flag),
        max_past_s=get("ALARMFLOW_MAX_PAST_S", str(30 * 86400), _int_range(60, 3650 * 86400)),
        max_future_s=get("ALARMFLOW_MAX_FUTURE_S", "3600", _int_range(0, 366 * 86400)),
    )
    nodes, node = settings.hash_ring_nodes, settings.hash_ring_node
    if nodes is not None and (nodes or node) and node not in nodes:
        expected = f"one of {','.join(nodes)}" if nodes else "ALARMFLOW_HASH_RING_NODES set too"
        errors.append(
            f"ALARMFLOW_HASH_RING_NODE={node!r}: expected this deployment's name, {expected}"
        )
    if not errors and _server_of(settings.redis_service_url) != _server_of(redis_url):
        errors.append(
            f"ALARMFLOW_REDIS_SERVICE_URL={settings.redis_service_url!r}: expected a database on "
            f"the server of ALARMFLOW_REDIS_URL ({redis_url}); a record's queue and service keys "
            "are written together by one atomic script"
        )
    if errors:
        raise ConfigError("\n".join(errors))
    return settings
