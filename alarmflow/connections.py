"""Every Kafka and Redis client alarmflow makes is configured here, from the settings.

- :func:`kafka_config` is the librdkafka configuration of every Kafka client (the flows'
  source, the DLQ/decision/audit producers, the pre-flight and offset look-ups, the tools):
  the bootstrap servers, the named security settings (``ALARMFLOW_KAFKA_SECURITY_PROTOCOL``,
  ``..._SASL_*``, ``..._SSL_*``) and the pass-through properties of ``ALARMFLOW_KAFKA_CONFIG``;
  librdkafka's logs and errors go to Python logging, one line per change
  (:mod:`alarmflow.kafka_logs`).
- :func:`redis_client` makes every Redis client: the URL's credentials, database and
  ``rediss://`` TLS, with the CA, certificate and key of ``ALARMFLOW_REDIS_SSL_*``; for a
  ``redis+sentinel://`` URL, a client of the master the sentinels name, found again on each
  new connection, so that it follows a failover. Its commands are packed by
  :class:`CommandPacker`.
- :func:`preflight` checks at start, within seconds, that Kafka and Redis accept these
  settings, that librdkafka accepts them for a consumer and a producer too, and that every
  topic a flow uses (:func:`flow_topics`) exists; :class:`ConnectFailed` says what failed and
  on which host, never a secret.
- :func:`scrub` and :class:`SecretFilter` mask secrets in any text or log line.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

import redis
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient
from redis.connection import HiredisRespSerializer
from redis.sentinel import MasterNotFoundError, Sentinel

from alarmflow import kafka_logs
from alarmflow.config import (
    MASK,
    SENTINEL_SCHEME,
    Settings,
    db_of,
    mask_url,
    mask_urls,
    sentinel_addresses,
    sentinel_master,
)
from operators import _native

KafkaTarget = Settings | str
"""Where a Kafka client connects: the settings, or a bare bootstrap string (plaintext, for the
test services and the tools run against them)."""

PREFLIGHT_TIMEOUT_S = 10.0
DELIVERY_TIMEOUT_S = 300.0
"""How long a producer of a bare bootstrap string (the tools, the test services) waits for a
delivery; a flow's producers wait ``ALARMFLOW_KAFKA_OUTAGE_S``."""


def delivery_timeout_s(target: KafkaTarget) -> float:
    """How long a producer of ``target`` waits for the broker to acknowledge a message before
    it gives the message up (and the flow stops, for recovery to replay it)."""
    return float(target.kafka_outage_s) if isinstance(target, Settings) else DELIVERY_TIMEOUT_S


def delivery_properties(target: KafkaTarget) -> dict[str, object]:
    """The properties of every flow's producers (dead letters, converge decisions and audit): a
    message counts as delivered once every in-sync replica has it, once only, and it waits out
    a broker away for :func:`delivery_timeout_s`, as a flow waits out Redis. Only a failed
    delivery is reported to Python: a message the flush no longer holds and no report named
    was delivered (confluent-kafka then builds no message object and makes no call per
    delivered message)."""
    return {
        "message.timeout.ms": int(delivery_timeout_s(target) * 1000),
        "acks": "all",
        "enable.idempotence": True,
        "delivery.report.only.error": True,
    }


FLOW_ACCESS_TYPES = {"converge": "action"}
"""Flows that read the topics of another access type than their name says."""
REDIS_CHECK_TIMEOUT_S = 5.0
PLAINTEXT_CLOSES = 3
SCRUBBED_LENGTH = 4
# librdkafka errors that retrying cannot mend: report them at once instead of at the timeout.
_FATAL_KAFKA_ERRORS = {
    KafkaError._AUTHENTICATION,
    KafkaError._SSL,
    KafkaError.SASL_AUTHENTICATION_FAILED,
    KafkaError.UNSUPPORTED_SASL_MECHANISM,
    KafkaError.ILLEGAL_SASL_STATE,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED,
}


class ConnectFailed(RuntimeError):
    """Kafka or Redis refused or did not answer at start; the message is one line naming the
    service, its host and what failed, without secrets."""


def kafka_config(target: KafkaTarget, extra: Mapping[str, object] | None = None) -> dict:
    """The librdkafka configuration of a client of ``target`` with the client's own
    properties ``extra`` (``group.id``, ``acks``, ...), which win over the pass-through
    ones of ``ALARMFLOW_KAFKA_CONFIG``."""
    if isinstance(target, str):
        return {"bootstrap.servers": target, **kafka_logs.client_config(), **(extra or {})}
    named = {
        "bootstrap.servers": target.kafka_bootstrap,
        "security.protocol": target.kafka_security_protocol,
        "sasl.mechanism": target.kafka_sasl_mechanism,
        "sasl.username": target.kafka_sasl_username,
        "sasl.password": target.kafka_sasl_password.reveal(),
        "ssl.ca.location": target.kafka_tls.ca,
        "ssl.certificate.location": target.kafka_tls.certificate,
        "ssl.key.location": target.kafka_tls.key,
        "ssl.key.password": target.kafka_ssl_key_password.reveal(),
    }
    config: dict = {key: value for key, value in named.items() if value}
    config.update(kafka_logs.client_config())
    config.update(target.kafka_config)
    config.update(extra or {})
    return config


def bootstrap_of(target: KafkaTarget) -> str:
    """The bootstrap servers of ``target``, for messages."""
    return target if isinstance(target, str) else target.kafka_bootstrap


class CommandPacker:
    """The Redis protocol's bytes of a command, as redis-py's hiredis serializer packs them: a
    flow's script call carries thousands of arguments per batch, all ``str``, ``bytes`` or
    ``int``, which the C packer of ``operators/_native.c`` writes in one pass, 3.5 to 4.5 times
    faster (``python -m bench.alert_stages`` compares the two). A command with another argument
    is packed by redis-py's own serializer."""

    def pack(self, *args: object) -> list[bytes]:
        name = args[0]
        # A command named in two words ("SCRIPT LOAD") is two arguments, as redis-py packs it.
        if isinstance(name, str):
            args = (*name.encode().split(), *args[1:])
        elif isinstance(name, bytes) and b" " in name:
            args = (*name.split(), *args[1:])
        packed = _native.pack_command(args)
        return [packed] if packed is not None else HiredisRespSerializer().pack(*args)


def redis_client(url: str, settings: Settings | None = None, **kwargs: object) -> redis.Redis:
    """A client of the Redis ``url`` (credentials, database, ``rediss://`` for TLS), with the
    TLS files of ``settings`` for a ``rediss://`` URL; ``kwargs`` go to ``redis.Redis``."""
    options: dict[str, object] = {"command_packer": CommandPacker()}
    if settings is not None and urlsplit(url).scheme == "rediss":
        tls = settings.redis_tls
        files = {"ssl_ca_certs": tls.ca, "ssl_certfile": tls.certificate, "ssl_keyfile": tls.key}
        options.update({key: path for key, path in files.items() if path})
        if tls.key:
            # Even when empty: with no password at all, OpenSSL asks for one on the terminal.
            options["ssl_password"] = settings.redis_ssl_key_password.reveal()
    options.update(kwargs)
    if urlsplit(url).scheme == SENTINEL_SCHEME:
        return _sentinel_master(url, settings, options)
    return redis.Redis.from_url(url, **options)


def sentinel_options(settings: Settings | None, timeout: float) -> dict[str, object]:
    """redis-py's options for a connection to a sentinel: ``timeout`` to connect and to answer,
    and the sentinels' own user and password (``ALARMFLOW_REDIS_SENTINEL_USERNAME`` and
    ``_PASSWORD``) where set."""
    options: dict[str, object] = {"socket_connect_timeout": timeout, "socket_timeout": timeout}
    if settings is not None:
        login = {
            "username": settings.redis_sentinel_username,
            "password": settings.redis_sentinel_password.reveal(),
        }
        options.update({option: value for option, value in login.items() if value})
    return options


def _sentinel_master(url: str, settings: Settings | None, options: dict) -> redis.Redis:
    """A client of the master that the sentinels of a ``redis+sentinel://`` URL name; the
    sentinels are asked with the connect timeout of ``options`` (:func:`sentinel_options`)."""
    parts = urlsplit(url)
    timeout = options.get("socket_connect_timeout") or REDIS_CHECK_TIMEOUT_S
    asked = sentinel_options(settings, timeout)
    sentinel = Sentinel(sentinel_addresses(url), sentinel_kwargs=asked)
    return sentinel.master_for(
        sentinel_master(url),
        db=db_of(url),
        username=parts.username or None,
        password=parts.password or None,
        **options,
    )


def scrub(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` with URL passwords and each of ``secrets`` replaced by ``***`` (a secret shorter
    than :data:`SCRUBBED_LENGTH` would mask random letters of the text, and is left alone)."""
    text = mask_urls(text)
    for secret in secrets:
        if len(secret) >= SCRUBBED_LENGTH:
            text = text.replace(secret, MASK)
    return text


class SecretFilter(logging.Filter):
    """Masks URL passwords and the settings' secrets in every record a handler emits."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        super().__init__()
        self._secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = scrub(message, self._secrets)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def mask_secrets_in_logs(settings: Settings) -> None:
    """Put a :class:`SecretFilter` on every handler of the root logger."""
    secret_filter = SecretFilter(settings.secrets())
    for handler in logging.getLogger().handlers:
        handler.addFilter(secret_filter)


class _Seen:
    """What librdkafka reports while a client connects (its ``error_cb`` and ``logger``):
    kept to explain a failure, and printed nowhere else."""

    def __init__(self) -> None:
        self.errors: list[KafkaError] = []
        self.logs: list[str] = []

    def error(self, error: KafkaError) -> None:
        self.errors.append(error)

    def log(self, _level: int, message: str, *args: object) -> None:
        self.logs.append(message % args if args else message)

    def fatal(self) -> str | None:
        """The first report that retrying cannot mend (bad credentials, TLS, a plaintext
        client on a TLS listener), or ``None``."""
        for error in self.errors:
            text = error.str()
            if error.code() in _FATAL_KAFKA_ERRORS or "SSL" in text or "SASL" in text:
                return text
        # A TLS/SASL listener closes a plaintext client's first request (ApiVersion) at once.
        closed = [line for line in self.logs if "closed" in line and "APIVERSION_QUERY" in line]
        if len(closed) >= PLAINTEXT_CLOSES:
            detail = closed[-1].split("]: ", 1)[-1]
            return f"{detail}: is it a TLS or SASL listener (ALARMFLOW_KAFKA_SECURITY_PROTOCOL)?"
        return None

    def last(self) -> str:
        return self.errors[-1].str() if self.errors else "no answer"


def key_hint(service: str) -> str:
    """Added to the words of a client that cannot read its TLS key (``KAFKA`` or ``REDIS``): a
    key encrypted at rest with no or a wrong password reads as an unreadable PEM file."""
    return f" (is the key encrypted? its password goes in ALARMFLOW_{service}_SSL_KEY_PASSWORD)"


def access_type(flow: str) -> str:
    """The access type whose topics the flow ``flow`` reads (``alert`` or ``flows.alert``)."""
    name = flow.rsplit(".", 1)[-1]
    return FLOW_ACCESS_TYPES.get(name, name)


def flow_topics(settings: Settings, flow: str) -> tuple[str, ...]:
    """Every topic the flow ``flow`` reads or writes: its input topics, the dead-letter topic,
    and the converge flow's decision and audit topics."""
    topics = [*settings.topics_for(access_type(flow)), settings.dlq_topic]
    if access_type(flow) == "action":
        topics += [settings.decision_topic, settings.audit_topic]
    return tuple(dict.fromkeys(topics))


def _make_clients(settings: Settings, seen: _Seen) -> AdminClient:
    """The admin client of the start check, once librdkafka has accepted the settings for a
    consumer and a producer as the flows make them (built and closed without connecting)."""
    reports = {"error_cb": seen.error, "logger": seen}
    consumer = Consumer(kafka_config(settings, {**reports, "group.id": "alarmflow-preflight"}))
    consumer.close()
    Producer(kafka_config(settings, {**reports, **delivery_properties(settings)})).close()
    return AdminClient(kafka_config(settings, reports))


def check_kafka(
    settings: Settings, timeout: float = PREFLIGHT_TIMEOUT_S, topics: tuple[str, ...] = ()
) -> None:
    """Raise :class:`ConnectFailed` unless librdkafka accepts these settings for every kind of
    client, the brokers answer a metadata request with them and each of ``topics`` exists; an
    authentication or TLS failure is reported as soon as librdkafka sees it."""
    seen = _Seen()
    secrets = settings.secrets()
    where = f"Kafka at {settings.kafka_bootstrap} ({settings.kafka_security_protocol})"
    try:
        admin = _make_clients(settings, seen)
    except KafkaException as exc:
        detail = scrub(exc.args[0].str(), secrets)
        if "ssl.key.location failed" in detail:
            detail += key_hint("KAFKA")
        raise ConnectFailed(f"{where}: librdkafka refuses the configuration: {detail}") from None
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = admin.list_topics(timeout=min(1.0, max(0.1, deadline - time.monotonic())))
            break
        except KafkaException:
            admin.poll(0)
        fatal = seen.fatal()
        if fatal is not None:
            raise ConnectFailed(f"{where}: {scrub(fatal, secrets)}")
        if time.monotonic() >= deadline:
            detail = scrub(seen.last(), secrets)
            raise ConnectFailed(f"{where} did not answer within {timeout:.0f}s: {detail}")
    missing = [topic for topic in topics if topic not in found.topics]
    if missing:
        raise ConnectFailed(f"{where}: no topic named {', '.join(map(repr, missing))}")


def check_redis(
    url: str, settings: Settings, name: str, timeout: float = REDIS_CHECK_TIMEOUT_S
) -> None:
    """Raise :class:`ConnectFailed` unless the Redis of ``url`` (setting ``name``) answers a
    PING in its database with these credentials and TLS files within ``timeout`` seconds."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        host = parts.path
    elif parts.scheme == SENTINEL_SCHEME:
        sentinels = ",".join(f"{h}:{p}" for h, p in sentinel_addresses(url))
        host = f"master {sentinel_master(url)} of sentinels {sentinels}"
    else:
        host = f"{parts.hostname}:{parts.port or 6379}"
    client = redis_client(
        url,
        settings,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry_on_timeout=False,
    )
    try:
        client.ping()
    except redis.AuthenticationError as exc:
        user = parts.username or "default"
        raise ConnectFailed(
            f"Redis at {host} ({name}) refused the credentials of user {user!r}: {exc}"
        ) from None
    except redis.ResponseError as exc:
        what = f"no database {db_of(url)} there: " if "DB index" in str(exc) else ""
        raise ConnectFailed(f"Redis at {host} ({name}={mask_url(url)}): {what}{exc}") from None
    except MasterNotFoundError:
        answers = "; ".join(_sentinel_answers(url, settings, timeout))
        raise ConnectFailed(f"Redis at {host} ({name}): no sentinel named it: {answers}") from None
    except redis.ConnectionError as exc:
        hint, text = "", str(exc)
        if parts.scheme == "redis" and ("reset by peer" in text or "closed by server" in text):
            hint = " (is it a TLS port? use rediss://)"
        elif "PEM lib" in text and settings.redis_tls.key:
            hint = key_hint("REDIS")
        detail = scrub(text, settings.secrets())
        raise ConnectFailed(f"Redis at {host} ({name}): {detail}{hint}") from None
    except redis.RedisError as exc:
        detail = scrub(str(exc), settings.secrets())
        raise ConnectFailed(f"Redis at {host} ({name}): {detail}") from None
    finally:
        client.close()


def master_state(state: Mapping[str, object] | None) -> str:
    """What a sentinel's state of the master says, as redis-py's ``check_master_state`` reads
    it (a master it sees down is no master to it)."""
    if state is None:
        return "knows no master of that name"
    address = f"{state['ip']}:{state['port']}"
    if state["is_sdown"] or state["is_odown"] or not state["is_master"]:
        return f"sees the master {address} down"
    return f"names the master {address}"


def _sentinel_answers(url: str, settings: Settings, timeout: float) -> list[str]:
    """What each sentinel of ``url`` says when asked for its masters with the flow's
    credentials: the master's address, that it does not know the master, or why it did not
    answer (a refusal of the credentials named by setting)."""
    master, user = sentinel_master(url), settings.redis_sentinel_username or "default"
    answers = []
    for host, port in sentinel_addresses(url):
        sentinel = redis.Redis(host, port, **sentinel_options(settings, timeout))
        try:
            said = master_state(sentinel.sentinel_masters().get(master))
        except redis.AuthenticationError:
            said = (
                f"refused the credentials of sentinel user {user!r} "
                "(ALARMFLOW_REDIS_SENTINEL_USERNAME and ALARMFLOW_REDIS_SENTINEL_PASSWORD)"
            )
        except redis.RedisError as exc:
            said = scrub(str(exc), settings.secrets())
        finally:
            sentinel.close()
        answers.append(f"sentinel {host}:{port} {said}")
    return answers


def preflight(settings: Settings, topics: tuple[str, ...] = ()) -> None:
    """Check Kafka, the ``topics`` there and every Redis database the flow uses; raise
    :class:`ConnectFailed`."""
    check_kafka(settings, topics=topics)
    urls = {
        "ALARMFLOW_REDIS_URL": settings.redis_url,
        "ALARMFLOW_REDIS_SERVICE_URL": settings.redis_service_url,
    }
    if settings.strategies == "redis":
        urls["ALARMFLOW_REDIS_CACHE_URL"] = settings.redis_cache_url
    for name, url in urls.items():
        check_redis(url, settings, name)


def reachable_or_exit(command: str, check: Callable[[], None]) -> None:
    """Run ``check`` (:func:`preflight`, :func:`check_kafka`, ...) for ``command``; when a
    service is unreachable or refuses it, one line saying so and exit 2, as a flow does."""
    try:
        check()
    except ConnectFailed as exc:
        print(f"{command}: cannot start: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
