"""alarmflow's configuration: environment variables, validated once at start.

A file named by ``ALARMFLOW_CONFIG`` may add values; the environment wins. The file is read with
python-dotenv's parser (``KEY=VALUE``, ``export KEY=VALUE``, single or double quotes, ``#``
comments; no ``${VAR}`` expansion). Names and defaults are documented in
``docs/configuration.md``. Every bad value is reported on one line naming the variable,
the value (secrets and URL passwords masked) and what is expected, and all of them are reported
together. An ``ALARMFLOW_*`` name that no setting reads is warned about with the closest known
name.
"""

from __future__ import annotations

import difflib
import io
import ipaddress
import logging
import math
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import astuple, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import NoReturn, TypeVar
from urllib.parse import SplitResult, parse_qsl, urlsplit, urlunsplit

import orjson
from dotenv.parser import parse_stream

from alarmflow.logs import LEVELS
from operators.bounds import TimeWindow
from operators.hashring import Shard
from state.keys import Backend

ACCESS_TYPES = ("ALERT", "EVENT", "INCIDENT", "DATA", "REAL_TIME_DATA", "ACTION")
SAMPLES = Path(__file__).resolve().parent.parent / "samples"
BUNDLED_STRATEGIES = SAMPLES / "strategies.json"
BUNDLED_HOSTS = SAMPLES / "hosts.json"

T = TypeVar("T")

log = logging.getLogger(__name__)

KAFKA_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
MASK = "***"
TLS_PARTS = ("CA", "CERTIFICATE", "KEY")
# librdkafka properties that ALARMFLOW_KAFKA_CONFIG may not set: named settings own them.
NAMED_KAFKA_PROPERTIES = {
    "bootstrap.servers": "ALARMFLOW_KAFKA_BOOTSTRAP",
    "metadata.broker.list": "ALARMFLOW_KAFKA_BOOTSTRAP",
    "security.protocol": "ALARMFLOW_KAFKA_SECURITY_PROTOCOL",
    "sasl.mechanism": "ALARMFLOW_KAFKA_SASL_MECHANISM",
    "sasl.mechanisms": "ALARMFLOW_KAFKA_SASL_MECHANISM",
    "sasl.username": "ALARMFLOW_KAFKA_SASL_USERNAME",
    "sasl.password": "ALARMFLOW_KAFKA_SASL_PASSWORD",
    "ssl.ca.location": "ALARMFLOW_KAFKA_SSL_CA_LOCATION",
    "ssl.certificate.location": "ALARMFLOW_KAFKA_SSL_CERTIFICATE_LOCATION",
    "ssl.key.location": "ALARMFLOW_KAFKA_SSL_KEY_LOCATION",
    "ssl.key.password": "ALARMFLOW_KAFKA_SSL_KEY_PASSWORD",
}
# The JSON values a librdkafka property of ALARMFLOW_KAFKA_CONFIG may have.
KAFKA_VALUE_TYPES = (str, int, float, bool)
# Settings whose values are never shown.
SECRET_NAMES = frozenset(
    {
        "ALARMFLOW_KAFKA_SASL_PASSWORD",
        "ALARMFLOW_KAFKA_SSL_KEY_PASSWORD",
        "ALARMFLOW_REDIS_SSL_KEY_PASSWORD",
        "ALARMFLOW_REDIS_SENTINEL_PASSWORD",
    }
)
# ALARMFLOW_* names read by something other than load_settings (scripts/services' ports).
OTHER_NAMES = ("ALARMFLOW_CONFIG", "ALARMFLOW_KAFKA_PORT", "ALARMFLOW_REDIS_PORT")
SENTINEL_SCHEME = "redis+sentinel"
SENTINEL_PORT = 26379
INT64_LIMIT = 1 << 63
# The parameters a Redis URL may have: a sentinel URL's name the master; the timeouts (seconds)
# go to redis-py's connection, which would take any other name as an unknown keyword.
REDIS_TIMEOUTS = ("socket_timeout", "socket_connect_timeout")
REDIS_PARAMETERS = ("db", *REDIS_TIMEOUTS)
SENTINEL_PARAMETERS = ("master", "db")
# In free text a URL's password runs from the ``:`` after its user to the last ``@`` on the line
# before the next URL (a word with ``://`` after a space), whatever characters it has.
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)(?:(?!\s\S*://)[^\n])*@")
# A password given as a URL parameter (redis-py reads ?password=), refused but shown.
_PARAMETER_PASSWORD = re.compile(r"([?&][^=&]*password=)[^&#]*")


class ConfigError(ValueError):
    """One or more configuration values are invalid; the message has one line per value."""


@dataclass(frozen=True)
class Secret:
    """A password or key: shown as ``***`` by ``str``, ``repr`` and f-strings; ``reveal()``
    gives the value to the client library that needs it."""

    _value: str = field(repr=False)

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __str__(self) -> str:
        return MASK if self._value else ""

    def __repr__(self) -> str:
        return f"Secret({str(self)!r})"


def _url_login(url: str) -> tuple[str, str, str] | None:
    """``scheme://user``, the password and the rest after the ``@`` of one URL, its password
    being everything between the ``:`` after the user and the last ``@`` (a raw ``/``, ``@``,
    ``:`` or space is part of it); ``None`` when the URL has no password."""
    scheme, sep, rest = url.partition("://")
    login, at, host = rest.rpartition("@")
    user, colon, password = login.partition(":")
    if not (sep and at and colon):
        return None
    return f"{scheme}://{user}", password, host


def mask_url(url: str) -> str:
    """One URL with its password (:func:`_url_login`, or a ``password`` parameter) replaced by
    ``***``."""
    login = _url_login(url)
    masked = f"{login[0]}:{MASK}@{login[2]}" if login else url
    return _PARAMETER_PASSWORD.sub(rf"\g<1>{MASK}", masked)


def mask_urls(text: str) -> str:
    """Free ``text`` with the password of every URL in it replaced by ``***``."""
    return _URL_PASSWORD.sub(rf"\g<1>{MASK}@", text)


def secret_property(name: str) -> bool:
    """Whether a librdkafka property holds a secret (its value is never shown); an OAUTHBEARER
    configuration may hold a client secret."""
    words = ("password", "secret", "oauthbearer.config")
    return name in ("ssl.key.pem", "ssl_key") or any(word in name for word in words)


@dataclass(frozen=True)
class StartPosition:
    """Where to read partitions with no recovered offset: ``earliest``, ``latest``, an
    ``offset`` (every partition) or a ``time`` (epoch ms, resolved per partition)."""

    kind: str
    value: int = 0


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of a TLS client: the CA certificate to trust (the system's when empty), and a
    client certificate and its key for servers that ask for one."""

    ca: str = ""
    certificate: str = ""
    key: str = ""

    def by_name(self, service: str) -> dict[str, str]:
        """The files under their setting names, ``ALARMFLOW_{service}_SSL_*_LOCATION``."""
        return {
            f"ALARMFLOW_{service}_SSL_{part}_LOCATION": value
            for part, value in zip(TLS_PARTS, astuple(self), strict=True)
        }


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
    metrics_targets_dir: Path | None
    dedup_ttl: int
    hash_ring_nodes: tuple[str, ...]
    hash_ring_node: str
    decision_topic: str
    audit_topic: str
    converge_lock: bool
    shields: str
    log_level: str
    max_past_s: int
    max_future_s: int
    event_language: str
    dynamic_groups: str
    data_lateness_s: int
    redis_outage_s: int
    redis_replicas: int
    kafka_outage_s: int
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str = ""
    kafka_sasl_username: str = ""
    kafka_sasl_password: Secret = Secret("")
    kafka_tls: TlsFiles = TlsFiles()
    kafka_ssl_key_password: Secret = Secret("")
    kafka_config: Mapping[str, str] = field(default_factory=dict)
    redis_tls: TlsFiles = TlsFiles()
    redis_ssl_key_password: Secret = Secret("")
    redis_sentinel_username: str = ""
    redis_sentinel_password: Secret = Secret("")

    def __repr__(self) -> str:
        """The fields with URL passwords and secrets masked, each field apart."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        if values["kafka_config"]:
            values["kafka_config"] = {
                k: MASK if secret_property(k) else v for k, v in values["kafka_config"].items()
            }
        for name in ("redis_url", "redis_service_url", "redis_cache_url"):
            values[name] = mask_url(values[name])
        return f"Settings({', '.join(f'{k}={mask_urls(repr(v))}' for k, v in values.items())})"

    def secrets(self) -> tuple[str, ...]:
        """Every secret value this configuration holds (for scrubbing text that might echo
        one): the SASL and key passwords, secret pass-through properties, URL passwords as
        written."""
        values = [self.kafka_sasl_password.reveal(), self.kafka_ssl_key_password.reveal()]
        values += [self.redis_ssl_key_password.reveal(), self.redis_sentinel_password.reveal()]
        values += [v for k, v in self.kafka_config.items() if secret_property(k)]
        urls = (self.redis_url, self.redis_service_url, self.redis_cache_url)
        values += [login[1] for url in urls if (login := _url_login(url))]
        return tuple(v for v in dict.fromkeys(values) if v)

    def topics_for(self, access_type: str) -> tuple[str, ...]:
        return self.topics[access_type.upper()]

    def redis_dbs(self) -> dict[Backend, int]:
        """The database of each backend on the queue server (writes ``SELECT`` them)."""
        return {
            Backend.QUEUE: db_of(self.redis_url),
            Backend.SERVICE: db_of(self.redis_service_url),
            Backend.CACHE: db_of(self.redis_cache_url),
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
    """The ``KEY=VALUE`` lines of an ``ALARMFLOW_CONFIG`` file (python-dotenv's syntax)."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(
            f"ALARMFLOW_CONFIG={path!r}: expected a readable file of KEY=VALUE lines ({reason})"
        ) from None
    values: dict[str, str] = {}
    with io.StringIO(text) as stream:
        for binding in parse_stream(stream):
            if binding.error or (binding.key is not None and binding.value is None):
                raise ConfigError(
                    f"ALARMFLOW_CONFIG={path!r}: line {binding.original.line} is not KEY=VALUE"
                )
            if binding.key is not None and binding.value is not None:
                values[binding.key] = binding.value
    return values


def _shown(name: str, raw: str) -> str:
    """How a setting's value appears in a message: secrets masked, URL passwords masked, and
    the secret properties of ``ALARMFLOW_KAFKA_CONFIG`` and its values that are no string,
    number or boolean masked (all of it if it is no JSON object)."""
    if name in SECRET_NAMES and raw:
        return repr(MASK)
    if name == "ALARMFLOW_KAFKA_CONFIG" and raw.strip():
        try:
            properties = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return repr(MASK)
        if not isinstance(properties, dict):
            return repr(MASK)
        masked = {
            k: MASK if secret_property(k) or not isinstance(v, KAFKA_VALUE_TYPES) else v
            for k, v in properties.items()
        }
        return repr(orjson.dumps(masked).decode())
    return repr(mask_url(raw))


def _warn_unknown(names: set[str], known: set[str]) -> None:
    # Compared without the prefix all names share, which would make every name look close.
    suffixes = {name.removeprefix("ALARMFLOW_"): name for name in known}
    for name in sorted(names - known):
        close = difflib.get_close_matches(name.removeprefix("ALARMFLOW_"), sorted(suffixes), 1)
        hint = f"did you mean {suffixes[close[0]]}?" if close else "no setting has this name"
        log.warning("%s is not a setting, ignored (%s)", name, hint)


def _is_port(text: str) -> bool:
    """Whether ``text`` is a TCP port a client can connect to, 1 to 65535."""
    return text.isdigit() and 0 < int(text) < 65536


def _bootstrap(value: str) -> str:
    for server in value.split(","):
        host, sep, port = server.strip().rpartition(":")
        if not sep or not host or not _is_port(port):
            raise ValueError("expected host:port[,host:port...] with ports from 1 to 65535")
    return value


def _address(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError("expected an IP address to listen on, e.g. 127.0.0.1 or 0.0.0.0") from None
    return value


def _log_level(value: str) -> str:
    if value.upper() not in LEVELS:
        raise ValueError(f"expected one of {', '.join(LEVELS)}")
    return value.upper()


def _optional_path(value: str) -> Path | None:
    return Path(value) if value else None


def _redis_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("redis", "rediss", "unix", SENTINEL_SCHEME) or not (
        parts.netloc or parts.path
    ):
        raise ValueError("expected a redis:// , rediss:// , unix:// or redis+sentinel:// URL")
    try:
        if parts.scheme == SENTINEL_SCHEME:
            sentinel_addresses(value)
        elif parts.port == 0:  # urlsplit refuses the ports above 65535 when asked for one
            raise ValueError
    except ValueError:
        raise ValueError("expected a port number from 1 to 65535 after the host") from None
    _check_parameters(parts)
    if parts.scheme == SENTINEL_SCHEME and not sentinel_master(value):
        raise ValueError(
            "expected redis+sentinel://[:PASSWORD@]HOST[:PORT][,HOST[:PORT]...]/DB?master=NAME"
        )
    db_of(value)
    return value


def _check_parameters(parts: SplitResult) -> None:
    """ValueError unless each parameter of a Redis URL is one alarmflow knows for its scheme,
    each timeout a number of seconds above 0."""
    known = SENTINEL_PARAMETERS if parts.scheme == SENTINEL_SCHEME else REDIS_PARAMETERS
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name not in known:
            raise ValueError(f"expected no URL parameter but {', '.join(known)} (not {name})")
        if name in REDIS_TIMEOUTS and not _above_zero(value):
            raise ValueError(f"expected {name} in seconds, a number above 0")


def _above_zero(text: str) -> bool:
    """Whether ``text`` is a finite number above 0."""
    try:
        return 0 < float(text) < math.inf
    except ValueError:
        return False


def sentinel_addresses(url: str) -> list[tuple[str, int]]:
    """The (host, port) of each sentinel a ``redis+sentinel://`` URL names (port 26379 unless
    given); ValueError for a port that is no port number."""
    addresses = []
    for address in urlsplit(url).netloc.rpartition("@")[2].split(","):
        host, sep, port = address.rpartition(":")
        if not sep:
            host, port = address, str(SENTINEL_PORT)
        if not _is_port(port):
            raise ValueError(f"not a port number: {port!r}")
        addresses.append((host, int(port)))
    return addresses


def sentinel_master(url: str) -> str:
    """The master name of a ``redis+sentinel://`` URL (its ``master`` parameter)."""
    query = dict(pair.partition("=")[::2] for pair in urlsplit(url).query.split("&") if pair)
    return query.get("master", "")


def db_of(url: str) -> int:
    """The database number a Redis URL names (``/N`` or ``?db=N``; 0 when it names none);
    ValueError unless each one it names is a whole number and they agree."""
    parts = urlsplit(url)
    query = dict(pair.partition("=")[::2] for pair in parts.query.split("&") if pair)
    named = [query["db"]] if "db" in query else []
    if parts.scheme != "unix" and parts.path.strip("/"):
        named.append(parts.path.strip("/"))
    if not all(re.fullmatch(r"[0-9]{1,9}", db) for db in named):
        raise ValueError("expected a whole database number, e.g. /9 (or ?db=9)")
    if len(set(map(int, named))) > 1:
        raise ValueError("expected one database number, not different ones in /N and ?db=N")
    return int(named[0]) if named else 0


def _server_of(url: str) -> tuple[str, str]:
    """The server a Redis URL names: its transport and host:port (or socket path); its
    credentials and database do not matter."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return ("unix", parts.path)
    if parts.scheme == SENTINEL_SCHEME:
        return (parts.scheme, f"{parts.netloc.rpartition('@')[2]}?master={sentinel_master(url)}")
    return (parts.scheme, f"{parts.hostname}:{parts.port or 6379}")


def _same_server(queue_url: str, db: int) -> str:
    """The queue URL's server and parameters with another database (bkmonitor: service 10,
    cache 8)."""
    parts = urlsplit(queue_url)
    kept = [pair for pair in parts.query.split("&") if pair and pair.partition("=")[0] != "db"]
    if parts.scheme == "unix":
        return f"{queue_url.split('?')[0]}?{'&'.join([*kept, f'db={db}'])}"
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", "&".join(kept), ""))


def _nonempty(value: str) -> str:
    if not value.strip():
        raise ValueError("expected a non-empty string")
    return value


def _topics(value: str) -> tuple[str, ...]:
    topics = tuple(t.strip() for t in value.split(",") if t.strip())
    if not topics:
        raise ValueError("expected a comma-separated list of topic names")
    # Kafka's rule for a topic name (org.apache.kafka.common.internals.Topic).
    bad = [t for t in topics if not re.fullmatch(r"[A-Za-z0-9._-]{1,249}", t) or t in (".", "..")]
    if bad:
        raise ValueError(
            f"expected topic names of at most 249 letters, digits, '.', '_' and '-': {bad[0]!r}"
        )
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


def _start_position(value: str) -> StartPosition | None:
    """The position ``value`` names, or ``None`` when it names none."""
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
    return None


def _start(value: str) -> StartPosition:
    position = _start_position(value)
    if position is None:
        raise ValueError(
            "expected earliest, latest, offset:N, time:EPOCH_SECONDS or time:ISO-8601 with a zone"
        )
    # librdkafka takes offsets and times as signed 64-bit numbers.
    if position.value >= INT64_LIMIT:
        raise ValueError(
            "expected an offset, or a time in milliseconds, below 2**63 (Kafka's 64-bit limit)"
        )
    return position


def _shields(value: str) -> str:
    if value and not Path(value).is_file():
        raise ValueError("expected a readable JSON file of shields, or empty for none")
    return value


def _strategies(value: str) -> str:
    if value != "redis" and not Path(value).is_file():
        raise ValueError("expected a readable JSON file of strategies, or 'redis'")
    return value


def _hosts(value: str) -> str:
    if not Path(value).is_file():
        raise ValueError("expected a readable JSON file of CMDB hosts")
    return value


def _language(value: str) -> str:
    if value not in ("zh", "en"):
        raise ValueError("expected zh (bkmonitor's texts) or en (their English)")
    return value


def _node_names(value: str) -> tuple[str, ...]:
    nodes = tuple(node.strip() for node in value.split(",") if node.strip())
    if len(set(nodes)) != len(nodes):
        raise ValueError("expected distinct comma-separated deployment names")
    return nodes


def _choice(options: tuple[str, ...], empty: bool = False) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value.upper() in options or (empty and not value):
            return value.upper()
        raise ValueError(f"expected one of {', '.join(options)}")

    return parse


def _file_or_empty(kind: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value and not Path(value).is_file():
            raise ValueError(f"expected the path of a readable {kind} file, or nothing")
        return value

    return parse


def _kafka_properties(value: str) -> dict[str, str]:
    expected = 'expected a JSON object of librdkafka properties, e.g. {"client.id": "alarmflow"}'
    try:
        properties = orjson.loads(value) if value.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"{expected} ({exc})") from None
    if not isinstance(properties, dict) or not all(
        isinstance(v, KAFKA_VALUE_TYPES) for v in properties.values()
    ):
        raise ValueError(expected)
    named = [
        f"{k} (use {NAMED_KAFKA_PROPERTIES[k]})" for k in properties if k in NAMED_KAFKA_PROPERTIES
    ]
    if named:
        raise ValueError(f"expected no property a named setting owns: {', '.join(named)}")
    return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in properties.items()}


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every setting; raise :class:`ConfigError` listing each bad one."""
    env = dict(os.environ if environ is None else environ)
    source: dict[str, str] = {}
    if env.get("ALARMFLOW_CONFIG"):  # set but empty: none, as for every other setting
        source.update(_read_file(env["ALARMFLOW_CONFIG"]))
    source.update({k: v for k, v in env.items() if k.startswith("ALARMFLOW_")})
    errors: list[str] = []
    known = set(OTHER_NAMES)

    def get(name: str, default: str, parse: Callable[[str], T]) -> T:
        known.add(name)
        raw = source.get(name, default)
        try:
            return parse(raw)
        except ValueError as exc:
            errors.append(f"{name}={_shown(name, raw)}: {exc}")
            return None  # type: ignore[return-value]

    def tls_files(service: str) -> TlsFiles:
        names = TlsFiles().by_name(service)
        return TlsFiles(*(get(name, "", _file_or_empty("PEM")) for name in names))

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
        metrics_targets_dir=get("ALARMFLOW_METRICS_TARGETS_DIR", "", _optional_path),
        dedup_ttl=get("ALARMFLOW_DEDUP_TTL", "600", _int_range(1, 7 * 86400)),
        hash_ring_nodes=get("ALARMFLOW_HASH_RING_NODES", "", _node_names),
        hash_ring_node=get("ALARMFLOW_HASH_RING_NODE", "", str.strip),
        decision_topic=get("ALARMFLOW_DECISION_TOPIC", "alarmflow.converge.decisions", _nonempty),
        audit_topic=get("ALARMFLOW_AUDIT_TOPIC", "alarmflow.converge.audit", _nonempty),
        converge_lock=get("ALARMFLOW_CONVERGE_LOCK", "0", _flag),
        shields=get("ALARMFLOW_SHIELDS", "", _shields),
        log_level=get("ALARMFLOW_LOG_LEVEL", "INFO", _log_level),
        max_past_s=get("ALARMFLOW_MAX_PAST_S", str(30 * 86400), _int_range(60, 3650 * 86400)),
        max_future_s=get("ALARMFLOW_MAX_FUTURE_S", "3600", _int_range(0, 366 * 86400)),
        event_language=get("ALARMFLOW_EVENT_LANGUAGE", "zh", _language),
        dynamic_groups=get("ALARMFLOW_DYNAMIC_GROUPS", "", _file_or_empty("JSON")),
        data_lateness_s=get("ALARMFLOW_DATA_LATENESS_S", "10", _int_range(0, 86400)),
        redis_outage_s=get("ALARMFLOW_REDIS_OUTAGE_S", "300", _int_range(0, 7 * 86400)),
        kafka_outage_s=get("ALARMFLOW_KAFKA_OUTAGE_S", "300", _int_range(1, 7 * 86400)),
        # Behind Sentinel a batch waits for one replica: a failover then loses no write.
        redis_replicas=get(
            "ALARMFLOW_REDIS_MIN_REPLICAS",
            "1" if urlsplit(queue_server).scheme == SENTINEL_SCHEME else "0",
            _int_range(0, 16),
        ),
        kafka_security_protocol=get(
            "ALARMFLOW_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT", _choice(KAFKA_PROTOCOLS)
        ),
        kafka_sasl_mechanism=get(
            "ALARMFLOW_KAFKA_SASL_MECHANISM", "", _choice(SASL_MECHANISMS, empty=True)
        ),
        kafka_sasl_username=get("ALARMFLOW_KAFKA_SASL_USERNAME", "", str),
        kafka_sasl_password=get("ALARMFLOW_KAFKA_SASL_PASSWORD", "", Secret),
        kafka_tls=tls_files("KAFKA"),
        kafka_ssl_key_password=get("ALARMFLOW_KAFKA_SSL_KEY_PASSWORD", "", Secret),
        kafka_config=get("ALARMFLOW_KAFKA_CONFIG", "", _kafka_properties),
        redis_tls=tls_files("REDIS"),
        redis_ssl_key_password=get("ALARMFLOW_REDIS_SSL_KEY_PASSWORD", "", Secret),
        redis_sentinel_username=get("ALARMFLOW_REDIS_SENTINEL_USERNAME", "", str),
        redis_sentinel_password=get("ALARMFLOW_REDIS_SENTINEL_PASSWORD", "", Secret),
    )
    _warn_unknown(set(source), known)
    errors += _security_errors(settings)
    nodes, node = settings.hash_ring_nodes, settings.hash_ring_node
    if nodes is not None and (nodes or node) and node not in nodes:
        expected = f"one of {','.join(nodes)}" if nodes else "ALARMFLOW_HASH_RING_NODES set too"
        errors.append(
            f"ALARMFLOW_HASH_RING_NODE={node!r}: expected this deployment's name, {expected}"
        )
    if not errors and _server_of(settings.redis_service_url) != _server_of(redis_url):
        errors.append(
            f"ALARMFLOW_REDIS_SERVICE_URL={_shown('', settings.redis_service_url)}: expected a "
            f"database on the server of ALARMFLOW_REDIS_URL ({mask_url(redis_url)}); a record's "
            "queue and service keys are written together by one atomic script"
        )
    if errors:
        raise ConfigError("\n".join(errors))
    return settings


def exit_on_config_error(exc: Exception) -> NoReturn:
    """Print a configuration error, one ``alarmflow: config error:`` line per problem, and exit
    with code 2."""
    for line in str(exc).splitlines():
        print(f"alarmflow: config error: {line}", file=sys.stderr)
    raise SystemExit(2)


def settings_or_exit(environ: Mapping[str, str] | None = None) -> Settings:
    """:func:`load_settings` for a command: a bad configuration ends it (exit code 2) with one
    line per problem rather than a traceback."""
    try:
        return load_settings(environ)
    except ConfigError as exc:
        exit_on_config_error(exc)


def _security_errors(settings: Settings) -> list[str]:
    """Settings that are each valid but do not fit together (a SASL password without SASL,
    a TLS file without TLS): refused rather than silently ignored."""
    return _kafka_security_errors(settings) + _redis_security_errors(settings)


def _kafka_security_errors(settings: Settings) -> list[str]:
    """The Kafka settings that do not fit the security protocol (none when it is invalid,
    which is reported already)."""
    protocol = settings.kafka_security_protocol
    if protocol is None:
        return []
    sasl = {
        "ALARMFLOW_KAFKA_SASL_MECHANISM": settings.kafka_sasl_mechanism,
        "ALARMFLOW_KAFKA_SASL_USERNAME": settings.kafka_sasl_username,
        "ALARMFLOW_KAFKA_SASL_PASSWORD": settings.kafka_sasl_password,
    }
    kafka_tls = {
        **settings.kafka_tls.by_name("KAFKA"),
        "ALARMFLOW_KAFKA_SSL_KEY_PASSWORD": settings.kafka_ssl_key_password,
    }
    in_use = f"ALARMFLOW_KAFKA_SECURITY_PROTOCOL={protocol}"
    if protocol.startswith("SASL_"):
        errors = [
            f"{n}='': expected a value with {in_use}"
            for n, v in sasl.items()
            if v is not None and not v
        ]
    else:
        errors = _unused(sasl, "ALARMFLOW_KAFKA_SECURITY_PROTOCOL=SASL_SSL or SASL_PLAINTEXT")
    if not protocol.endswith("SSL"):
        errors += _unused(kafka_tls, "ALARMFLOW_KAFKA_SECURITY_PROTOCOL=SSL or SASL_SSL")
    return errors


def _redis_security_errors(settings: Settings) -> list[str]:
    """The Redis settings that do not fit the scheme of ``ALARMFLOW_REDIS_URL`` (none when it
    is invalid, which is reported already)."""
    if settings.redis_url is None:
        return []
    scheme = urlsplit(settings.redis_url).scheme
    errors: list[str] = []
    if scheme != "rediss":
        redis_tls = {
            **settings.redis_tls.by_name("REDIS"),
            "ALARMFLOW_REDIS_SSL_KEY_PASSWORD": settings.redis_ssl_key_password,
        }
        errors += _unused(redis_tls, "a rediss:// ALARMFLOW_REDIS_URL (TLS)")
    if scheme != SENTINEL_SCHEME:
        sentinel = {
            "ALARMFLOW_REDIS_SENTINEL_USERNAME": settings.redis_sentinel_username,
            "ALARMFLOW_REDIS_SENTINEL_PASSWORD": settings.redis_sentinel_password,
        }
        errors += _unused(sentinel, "a redis+sentinel:// ALARMFLOW_REDIS_URL")
    return errors


def _unused(values: Mapping[str, object], needs: str) -> list[str]:
    """A line for each of ``values`` that is set although what it needs is not."""
    return [f"{n}={_shown(n, str(v))}: expected only with {needs}" for n, v in values.items() if v]
