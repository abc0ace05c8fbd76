"""One place makes every Kafka and Redis client: their configuration, start checks and the
masking of secrets in what they print."""

from __future__ import annotations

import importlib
import logging
from functools import partial

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.connection import HiredisRespSerializer

from alarmflow import connections, kafka_logs
from alarmflow.config import Settings, load_settings
from alarmflow.connections import (
    CommandPacker,
    ConnectFailed,
    SecretFilter,
    check_kafka,
    check_redis,
    flow_topics,
    kafka_config,
    key_hint,
    master_state,
    redis_client,
    scrub,
)
from alarmflow.services.tls import encrypted_key
from tests.conftest import SecureServices

SASL = {
    "ALARMFLOW_KAFKA_BOOTSTRAP": "kafka1:9094,kafka2:9094",
    "ALARMFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "ALARMFLOW_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "ALARMFLOW_KAFKA_SASL_USERNAME": "alarmflow",
    "ALARMFLOW_KAFKA_SASL_PASSWORD": "K4fka-S3cret",
    "ALARMFLOW_KAFKA_CONFIG": '{"client.id": "alarmflow-eu", "acks": "1"}',
}


def test_every_kafka_client_gets_the_named_security_settings_and_the_pass_through_ones():
    settings = load_settings(SASL)
    assert kafka_config(settings, {"acks": "all", "group.id": "g"}) == {
        "bootstrap.servers": "kafka1:9094,kafka2:9094",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "alarmflow",
        "sasl.password": "K4fka-S3cret",
        "client.id": "alarmflow-eu",
        "acks": "all",  # the client's own property wins over the pass-through one
        "group.id": "g",
        **kafka_logs.client_config(),  # librdkafka's logs and errors through Python logging
    }


def test_the_default_settings_make_a_plaintext_client_as_before():
    assert kafka_config(load_settings({})) == {
        "bootstrap.servers": "127.0.0.1:9092",
        "security.protocol": "PLAINTEXT",
        **kafka_logs.client_config(),
    }
    assert kafka_config("127.0.0.1:9092", {"acks": "all"}) == {
        "bootstrap.servers": "127.0.0.1:9092",
        "acks": "all",
        **kafka_logs.client_config(),
    }


def test_a_rediss_client_gets_the_tls_files_and_a_redis_one_does_not(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("pem")
    url = "rediss://alarmflow:pw@h:6380/9"
    settings = load_settings(
        {"ALARMFLOW_REDIS_URL": url, "ALARMFLOW_REDIS_SSL_CA_LOCATION": str(ca)}
    )
    tls = redis_client(url, settings, socket_timeout=3).connection_pool.connection_kwargs
    assert (tls["ssl_ca_certs"], tls["username"], tls["password"], tls["db"]) == (
        str(ca),
        "alarmflow",
        "pw",
        9,
    )
    assert tls["socket_timeout"] == 3
    plain = redis_client("redis://h:6379/10", settings).connection_pool.connection_kwargs
    assert "ssl_ca_certs" not in plain


@pytest.mark.parametrize(("password", "given"), [("", ""), ("K3y-S3cret", "K3y-S3cret")])
def test_a_client_key_always_comes_with_a_password_so_openssl_never_asks_on_a_terminal(
    tmp_path, password, given
):
    """Python's ``ssl`` prompts for an encrypted key's password only when it is given none:
    with a key, redis-py always gets one, empty when ``ALARMFLOW_REDIS_SSL_KEY_PASSWORD`` is
    unset (an encrypted key then fails to open, as the start-check test shows)."""
    files = {}
    for part in ("CERTIFICATE", "KEY"):
        files[part] = tmp_path / f"{part.lower()}.pem"
        files[part].write_text("pem")
    url = "rediss://h:6380/9"
    env = {f"ALARMFLOW_REDIS_SSL_{part}_LOCATION": str(f) for part, f in files.items()}
    settings = load_settings(
        {"ALARMFLOW_REDIS_URL": url, "ALARMFLOW_REDIS_SSL_KEY_PASSWORD": password, **env}
    )
    assert redis_client(url, settings).connection_pool.connection_kwargs["ssl_password"] == given


def test_scrub_masks_url_passwords_and_the_given_secrets():
    text = "redis://user:p@ss@h:6379/9 and rediss://:x@h2/8 said K4fka-S3cret"
    assert (
        scrub(text, ("K4fka-S3cret",))
        == "redis://user:***@h:6379/9 and rediss://:***@h2/8 said ***"
    )


def test_scrub_masks_url_passwords_whatever_characters_they_have():
    text = "(redis://:pa ss word@h:16379/99) then rediss://u:p@s/s: x@h2/8, redis://h3/9 ok"
    assert scrub(text) == "(redis://:***@h:16379/99) then rediss://u:***@h2/8, redis://h3/9 ok"


def test_a_log_line_that_would_show_a_secret_is_masked():
    record = logging.LogRecord(
        "x", logging.ERROR, __file__, 1, "url %s pw %s", ("redis://:a@h/9", "K4fka"), None
    )
    assert SecretFilter(("K4fka",)).filter(record)
    assert record.getMessage() == "url redis://:***@h/9 pw ***"


def test_a_database_the_server_does_not_have_stops_the_start(redis_server):
    settings = load_settings({"ALARMFLOW_REDIS_URL": redis_server.url(9)})
    check_redis(redis_server.url(15), settings, "ALARMFLOW_REDIS_URL")
    with pytest.raises(ConnectFailed) as error:
        check_redis(redis_server.url(16), settings, "ALARMFLOW_REDIS_SERVICE_URL")
    assert str(error.value) == (
        f"Redis at 127.0.0.1:{redis_server.port} (ALARMFLOW_REDIS_SERVICE_URL="
        f"{redis_server.url(16)}): no database 16 there: DB index is out of range"
    )


def test_a_start_failure_masks_a_url_password_with_spaces(redis_server):
    url = f"redis://:pa ss word@127.0.0.1:{redis_server.port}/16"
    settings = load_settings({"ALARMFLOW_REDIS_URL": url})
    with pytest.raises(ConnectFailed) as error:
        check_redis(url, settings, "ALARMFLOW_REDIS_URL")
    assert str(error.value) == (
        f"Redis at 127.0.0.1:{redis_server.port} (ALARMFLOW_REDIS_URL="
        f"redis://:***@127.0.0.1:{redis_server.port}/16): no database 16 there: "
        "DB index is out of range"
    )


def test_a_broker_that_never_answers_is_reported_after_the_timeout(free_port):
    settings = load_settings({"ALARMFLOW_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}"})
    with pytest.raises(
        ConnectFailed, match=r"Kafka at 127\.0\.0\.1:\d+ \(PLAINTEXT\) did not answer"
    ):
        check_kafka(settings, timeout=1)


def test_a_property_librdkafka_does_not_know_stops_the_start_masked():
    value = '{"no.such.property": "x", "sasl.oauthbearer.client.secret": "0auth-S3cret"}'
    settings = load_settings({"ALARMFLOW_KAFKA_CONFIG": value})
    with pytest.raises(ConnectFailed) as error:
        check_kafka(settings, timeout=1)
    assert str(error.value).startswith(
        "Kafka at 127.0.0.1:9092 (PLAINTEXT): librdkafka refuses the configuration: "
        'No such configuration property: "no.such.property"'
    )
    assert "0auth-S3cret" not in str(error.value)


@pytest.mark.parametrize(
    ("properties", "refusal"),
    [
        ('{"fetch.max.bytes": "1000"}', "Failed to create consumer: `fetch.max.bytes` must be"),
        (
            '{"max.in.flight.requests.per.connection": "10"}',
            "Failed to create producer: `max.in.flight` must be set <= 5",
        ),
    ],
)
def test_properties_a_consumer_or_producer_refuses_stop_the_start(properties, refusal):
    """The admin client of the check accepts them; the flows' source or sinks would not."""
    settings = load_settings({"ALARMFLOW_KAFKA_CONFIG": properties})
    with pytest.raises(ConnectFailed) as error:
        check_kafka(settings, timeout=1)
    assert str(error.value).startswith(
        f"Kafka at 127.0.0.1:9092 (PLAINTEXT): librdkafka refuses the configuration: {refusal}"
    )


def test_topics_missing_on_the_broker_stop_the_start(kafka_broker, kafka_topics):
    [there] = kafka_topics("in")
    settings = load_settings({"ALARMFLOW_KAFKA_BOOTSTRAP": kafka_broker.bootstrap})
    check_kafka(settings, topics=(there,))
    with pytest.raises(ConnectFailed) as error:
        check_kafka(settings, topics=(there, f"{there}.missing", "bad name"))
    assert str(error.value) == (
        f"Kafka at {kafka_broker.bootstrap} (PLAINTEXT): "
        f"no topic named '{there}.missing', 'bad name'"
    )


def test_a_flow_uses_its_input_topics_the_dead_letters_and_converge_its_outputs_too():
    settings = load_settings({"ALARMFLOW_ALERT_TOPICS": "a1,a2", "ALARMFLOW_ACTION_TOPICS": "act"})
    assert flow_topics(settings, "flows.alert") == ("a1", "a2", "alarmflow.dlq")
    assert flow_topics(settings, "flows.converge") == (
        "act",
        "alarmflow.dlq",
        "alarmflow.converge.decisions",
        "alarmflow.converge.audit",
    )


def test_a_secret_too_short_to_mask_safely_leaves_the_text_readable():
    assert scrub("sasl_ssl://h:1/bootstrap: Connect failed", ("p",)) == (
        "sasl_ssl://h:1/bootstrap: Connect failed"
    )


def client_certificate_settings(
    services: SecureServices, with_certificate: bool, **extra: str
) -> Settings:
    """Settings for the SSL listener and the Redis that require a client certificate (and
    ``extra`` settings)."""
    files = {"CA": services.certificates.ca}
    if with_certificate:
        files["CERTIFICATE"] = services.certificates.client_certificate
        files["KEY"] = services.certificates.client_key
    env = {
        "ALARMFLOW_KAFKA_BOOTSTRAP": f"127.0.0.1:{services.listener.mtls_port}",
        "ALARMFLOW_KAFKA_SECURITY_PROTOCOL": "SSL",
        "ALARMFLOW_REDIS_URL": services.mtls_redis.url(9),
    }
    for service in ("KAFKA", "REDIS"):
        env |= {f"ALARMFLOW_{service}_SSL_{part}_LOCATION": str(f) for part, f in files.items()}
    return load_settings(env | extra)


@pytest.mark.integration
def test_a_client_certificate_is_shown_to_kafka_and_redis_that_require_one(secure_services):
    settings = client_certificate_settings(secure_services, with_certificate=True)
    check_kafka(settings)
    check_redis(settings.redis_url, settings, "ALARMFLOW_REDIS_URL")

    without = client_certificate_settings(secure_services, with_certificate=False)
    with pytest.raises(ConnectFailed, match=r"Kafka at .* \(SSL\): .*SSL"):
        check_kafka(without)
    with pytest.raises(ConnectFailed, match=r"Redis at 127\.0\.0\.1:\d+ \(ALARMFLOW_REDIS_URL\)"):
        check_redis(without.redis_url, without, "ALARMFLOW_REDIS_URL")


@pytest.mark.integration
def test_an_encrypted_client_key_opens_with_its_password_which_is_never_shown(
    secure_services, tmp_path
):
    password = "K3y-Passw0rd-at-rest"
    key = encrypted_key(secure_services.certificates.client_key, password, tmp_path / "c.key")
    assert "ENCRYPTED PRIVATE KEY" in key.read_text()

    def with_key(key_password: str) -> Settings:
        return client_certificate_settings(
            secure_services,
            with_certificate=True,
            ALARMFLOW_KAFKA_SSL_KEY_LOCATION=str(key),
            ALARMFLOW_KAFKA_SSL_KEY_PASSWORD=key_password,
            ALARMFLOW_REDIS_SSL_KEY_LOCATION=str(key),
            ALARMFLOW_REDIS_SSL_KEY_PASSWORD=key_password,
        )

    check_kafka(with_key(password))
    check_redis(with_key(password).redis_url, with_key(password), "ALARMFLOW_REDIS_URL")
    for wrong in ("", "not-the-password"):
        with pytest.raises(ConnectFailed, match=r"Kafka at .* \(SSL\): .*key") as refused:
            check_kafka(with_key(wrong))
        assert str(refused.value).endswith(key_hint("KAFKA"))
        settings = with_key(wrong)
        with pytest.raises(ConnectFailed, match=r"Redis at .*PEM lib") as redis_refused:
            check_redis(settings.redis_url, settings, "ALARMFLOW_REDIS_URL")
        assert str(redis_refused.value).endswith(key_hint("REDIS"))
        for shown in (str(refused.value), str(redis_refused.value)):
            assert password not in shown
            assert not wrong or wrong not in shown


arguments = st.lists(
    st.text(max_size=8)
    | st.binary(max_size=8)
    | st.integers()
    | st.booleans()
    | st.floats(allow_nan=False),
    max_size=12,
)


@given(st.sampled_from(["EVALSHA", "SCRIPT LOAD", b"CONFIG GET", b"GET", "SET"]), arguments)
def test_commands_are_packed_as_redis_py_packs_them(name, args):
    def packed(packer: CommandPacker | HiredisRespSerializer) -> object:
        try:
            return packer.pack(name, *args)
        except Exception as exc:  # a boolean is refused by both
            return type(exc)

    assert packed(CommandPacker()) == packed(HiredisRespSerializer())


def test_a_buffer_argument_is_left_to_redis_py_s_own_packing():
    args = ("SET", memoryview(b"key"), bytearray(b"value"))
    assert CommandPacker().pack(*args) == HiredisRespSerializer().pack(*args)


@pytest.mark.parametrize("number", [0, 7, -1, 10, -(2**63), 2**63 - 1, 2**63, -(10**30)])
def test_integers_at_the_edges_of_64_bits_are_packed_as_redis_py_packs_them(number):
    assert CommandPacker().pack("SET", number, -number) == HiredisRespSerializer().pack(
        "SET", number, -number
    )


def sentinel_state(is_sdown: bool = False, is_odown: bool = False) -> dict[str, object]:
    """A master's state as redis-py parses ``SENTINEL MASTERS``."""
    return {
        "ip": "10.0.0.1",
        "port": 6379,
        "is_master": True,
        "is_sdown": is_sdown,
        "is_odown": is_odown,
    }


@pytest.mark.parametrize(
    ("state", "said"),
    [
        (None, "knows no master of that name"),
        (sentinel_state(), "names the master 10.0.0.1:6379"),
        (sentinel_state(is_sdown=True), "sees the master 10.0.0.1:6379 down"),
        (sentinel_state(is_odown=True), "sees the master 10.0.0.1:6379 down"),
    ],
)
def test_what_a_sentinel_says_of_the_master_it_is_asked_for(state, said):
    """A master redis-py's ``check_master_state`` passes over (down subjectively or
    objectively) is reported down, as no sentinel named it."""
    assert master_state(state) == said


@pytest.mark.parametrize(
    ("module", "argv"),
    [
        ("report", []),
        ("demo", []),
        ("feed", ["--seconds", "1"]),
        ("replay", ["flows.alert", "--prefix", "t_replay_unreachable", "--from-beginning"]),
    ],
)
def test_a_command_that_cannot_reach_kafka_says_so_in_one_line_and_exits_2(
    module, argv, free_port, monkeypatch, capsys
):
    command = importlib.import_module(f"alarmflow.{module}")
    quick = partial(check_kafka, timeout=1)
    monkeypatch.setattr(connections, "check_kafka", quick)
    monkeypatch.setattr(command, "check_kafka", quick, raising=False)
    monkeypatch.setenv("ALARMFLOW_KAFKA_BOOTSTRAP", f"127.0.0.1:{free_port()}")

    with pytest.raises(SystemExit) as exited:
        command.main(argv)

    assert exited.value.code == 2
    said = capsys.readouterr().err.splitlines()
    assert len(said) == 1
    assert said[0].startswith(f"alarmflow.{module}: cannot start: Kafka at 127.0.0.1:")
