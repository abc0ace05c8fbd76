"""Configuration: the contract's names and defaults, and one clear line per bad value."""

from __future__ import annotations

import pytest

from alarmflow.config import (
    BUNDLED_STRATEGIES,
    ConfigError,
    StartPosition,
    load_settings,
    settings_or_exit,
)
from alarmflow.connections import ConnectFailed, check_redis
from state.keys import Backend


def test_defaults_are_the_contracts():
    settings = load_settings({})
    assert settings.kafka_bootstrap == "127.0.0.1:9092"
    assert settings.redis_url == "redis://127.0.0.1:6379/9"
    assert settings.redis_service_url == "redis://127.0.0.1:6379/10"
    assert settings.redis_cache_url == "redis://127.0.0.1:6379/8"
    assert settings.key_prefix == "bk_bkmonitorv3.ee"
    assert settings.strategies == str(BUNDLED_STRATEGIES)
    assert settings.topics_for("alert") == ("alarmflow.alert",)
    assert settings.topics_for("REAL_TIME_DATA") == ("alarmflow.real_time_data",)
    assert settings.topics_for("action") == ("alarmflow.action",)
    assert (settings.start, settings.tail) == (StartPosition("latest"), True)
    assert settings.dlq_topic == "alarmflow.dlq"
    assert settings.max_message_bytes == 1_048_576
    assert settings.metrics_port == 9108
    assert settings.dedup_ttl == 600


def test_service_url_follows_the_queue_server():
    settings = load_settings({"ALARMFLOW_REDIS_URL": "redis://:pw@redis.example:6380/9"})
    assert settings.redis_service_url == "redis://:pw@redis.example:6380/10"


def test_values_are_read_and_topics_split():
    settings = load_settings(
        {"ALARMFLOW_ALERT_TOPICS": " a , b,", "ALARMFLOW_TAIL": "0", "ALARMFLOW_START": "earliest"}
    )
    assert settings.topics_for("alert") == ("a", "b")
    assert (settings.tail, settings.start) == (False, StartPosition("earliest"))


@pytest.mark.parametrize("name", ["bad name", "a/b", ".", "..", "x" * 250, "主题"])
def test_a_topic_name_kafka_refuses_is_a_config_error(name):
    with pytest.raises(ConfigError) as caught:
        load_settings({"ALARMFLOW_ALERT_TOPICS": f"ok.topic,{name}"})
    assert str(caught.value) == (
        f"ALARMFLOW_ALERT_TOPICS='ok.topic,{name}': expected topic names of at most 249 "
        f"letters, digits, '.', '_' and '-': {name!r}"
    )
    assert load_settings({"ALARMFLOW_ALERT_TOPICS": "a-b_c.D9"}).topics_for("alert") == (
        "a-b_c.D9",
    )


def test_every_bad_value_is_reported_on_its_own_line():
    with pytest.raises(ConfigError) as caught:
        load_settings(
            {
                "ALARMFLOW_KAFKA_BOOTSTRAP": "nohostport",
                "ALARMFLOW_REDIS_URL": "http://x",
                "ALARMFLOW_START": "yesterday",
                "ALARMFLOW_TAIL": "yes",
                "ALARMFLOW_MAX_MESSAGE_BYTES": "-5",
                "ALARMFLOW_METRICS_PORT": "70000",
                "ALARMFLOW_STRATEGIES": "/no/such/file.json",
                "ALARMFLOW_EVENT_TOPICS": " , ",
            }
        )
    lines = str(caught.value).splitlines()
    assert len(lines) == 8
    assert any(
        line.startswith("ALARMFLOW_START='yesterday': expected earliest, latest") for line in lines
    )
    assert "ALARMFLOW_TAIL='yes': expected 0 or 1" in lines
    assert "ALARMFLOW_METRICS_PORT='70000': expected a whole number from 0 to 65535" in lines
    assert any(line.startswith("ALARMFLOW_KAFKA_BOOTSTRAP='nohostport'") for line in lines)


def test_a_config_file_adds_values_and_the_environment_wins(tmp_path):
    path = tmp_path / "alarmflow.env"
    path.write_text("# comment\nALARMFLOW_DLQ_TOPIC=from-file\nALARMFLOW_KEY_PREFIX=file.ee\n")
    settings = load_settings({"ALARMFLOW_CONFIG": str(path), "ALARMFLOW_KEY_PREFIX": "env.ee"})
    assert (settings.dlq_topic, settings.key_prefix) == ("from-file", "env.ee")


def test_a_malformed_config_file_line_is_named(tmp_path):
    path = tmp_path / "alarmflow.env"
    path.write_text("ALARMFLOW_TAIL=0\njust words\n")
    with pytest.raises(ConfigError, match="line 2 is not KEY=VALUE"):
        load_settings({"ALARMFLOW_CONFIG": str(path)})


@pytest.mark.parametrize(
    ("value", "start"),
    [
        ("earliest", StartPosition("earliest")),
        ("offset:42", StartPosition("offset", 42)),
        ("time:1800000000", StartPosition("time", 1_800_000_000_000)),
        ("time:2027-01-15T08:00:00Z", StartPosition("time", 1_800_000_000_000)),
    ],
)
def test_start_positions(value, start):
    assert load_settings({"ALARMFLOW_START": value}).start == start


@pytest.mark.parametrize("value", ["offset:x", "time:tomorrow", "time:2027-01-15T08:00:00", "soon"])
def test_bad_start_positions_are_refused(value):
    with pytest.raises(ConfigError, match="ALARMFLOW_START"):
        load_settings({"ALARMFLOW_START": value})


def test_a_start_position_fits_kafka_s_64_bit_offsets_and_times():
    largest = 2**63 - 1
    assert load_settings({"ALARMFLOW_START": f"offset:{largest}"}).start.value == largest
    last_second = largest // 1000
    assert load_settings({"ALARMFLOW_START": f"time:{last_second}"}).start.value < 2**63
    for value in (f"offset:{2**63}", "offset:99999999999999999999", f"time:{last_second + 1}"):
        with pytest.raises(ConfigError) as error:
            load_settings({"ALARMFLOW_START": value})
        assert str(error.value) == (
            f"ALARMFLOW_START={value!r}: expected an offset, or a time in milliseconds, "
            "below 2**63 (Kafka's 64-bit limit)"
        )


@pytest.mark.parametrize("port", ["0", "65536", "99999"])
def test_a_kafka_port_outside_1_to_65535_is_refused(port):
    value = f"127.0.0.1:9092,127.0.0.1:{port}"
    with pytest.raises(ConfigError) as error:
        load_settings({"ALARMFLOW_KAFKA_BOOTSTRAP": value})
    assert str(error.value) == (
        f"ALARMFLOW_KAFKA_BOOTSTRAP={value!r}: expected host:port[,host:port...] with ports "
        "from 1 to 65535"
    )


@pytest.mark.parametrize("port", ["0", "65536"])
def test_a_redis_port_outside_1_to_65535_is_refused(port):
    url = f"redis://127.0.0.1:{port}/9"
    with pytest.raises(ConfigError) as error:
        load_settings({"ALARMFLOW_REDIS_URL": url})
    assert str(error.value) == (
        f"ALARMFLOW_REDIS_URL={url!r}: expected a port number from 1 to 65535 after the host"
    )


def test_the_highest_ports_are_ports():
    env = {"ALARMFLOW_KAFKA_BOOTSTRAP": "k:65535", "ALARMFLOW_REDIS_URL": "redis://r:65535/9"}
    assert load_settings(env).redis_url == "redis://r:65535/9"


def test_metrics_address_must_be_an_ip_address():
    assert load_settings({"ALARMFLOW_METRICS_ADDR": "0.0.0.0"}).metrics_addr == "0.0.0.0"
    with pytest.raises(ConfigError, match="ALARMFLOW_METRICS_ADDR='everywhere'"):
        load_settings({"ALARMFLOW_METRICS_ADDR": "everywhere"})


def test_each_backend_is_a_database_of_the_queue_server():
    settings = load_settings({"ALARMFLOW_REDIS_URL": "redis://h:6380/3"})
    assert {b.value: db for b, db in settings.redis_dbs().items()} == {
        "queue": 3,
        "service": 10,
        "cache": 8,
    }
    unix = load_settings(
        {
            "ALARMFLOW_REDIS_URL": "unix:///tmp/r.sock?db=9",
            "ALARMFLOW_REDIS_SERVICE_URL": "unix:///tmp/r.sock?db=4",
        }
    )
    assert unix.redis_dbs()[Backend.SERVICE] == 4


def test_service_keys_on_another_server_are_refused():
    with pytest.raises(ConfigError, match=r"ALARMFLOW_REDIS_SERVICE_URL=.*one atomic script"):
        load_settings({"ALARMFLOW_REDIS_SERVICE_URL": "redis://elsewhere:6379/10"})


def test_a_database_that_is_not_a_number_is_refused():
    with pytest.raises(ConfigError, match=r"ALARMFLOW_REDIS_URL=.*database number"):
        load_settings({"ALARMFLOW_REDIS_URL": "redis://h:6379/?db=x"})


def test_sharding_is_off_by_default():
    settings = load_settings({})
    assert (settings.hash_ring_nodes, settings.hash_ring_node) == ((), "")
    assert settings.shard() is None


def test_a_deployment_owns_the_businesses_the_ring_gives_it():
    env = {
        "ALARMFLOW_HASH_RING_NODES": " node-a, node-b ,node-c",
        "ALARMFLOW_HASH_RING_NODE": "node-c",
    }
    settings = load_settings(env)
    assert settings.hash_ring_nodes == ("node-a", "node-b", "node-c")
    assert settings.shard().owns(2)
    assert not settings.shard().owns(3)


@pytest.mark.parametrize(
    ("nodes", "node", "message"),
    [
        ("a,b", "", "ALARMFLOW_HASH_RING_NODE='': expected this deployment's name, one of a,b"),
        ("a,b", "c", "ALARMFLOW_HASH_RING_NODE='c': expected this deployment's name, one of a,b"),
        ("", "a", "expected this deployment's name, ALARMFLOW_HASH_RING_NODES set too"),
        ("a,a", "a", "ALARMFLOW_HASH_RING_NODES='a,a': expected distinct comma-separated"),
    ],
)
def test_a_bad_ring_is_refused_on_one_line(nodes, node, message):
    env = {"ALARMFLOW_HASH_RING_NODES": nodes, "ALARMFLOW_HASH_RING_NODE": node}
    with pytest.raises(ConfigError) as error:
        load_settings(env)
    assert message in str(error.value)
    assert len(str(error.value).splitlines()) == 1


def test_converge_output_topics():
    settings = load_settings({})
    assert (settings.decision_topic, settings.audit_topic) == (
        "alarmflow.converge.decisions",
        "alarmflow.converge.audit",
    )
    with pytest.raises(ConfigError, match="ALARMFLOW_AUDIT_TOPIC"):
        load_settings({"ALARMFLOW_AUDIT_TOPIC": ""})
    assert load_settings({"ALARMFLOW_DECISION_TOPIC": "d"}).decision_topic == "d"


def test_converge_lock_is_off_unless_asked_for():
    assert not load_settings({}).converge_lock
    assert load_settings({"ALARMFLOW_CONVERGE_LOCK": "1"}).converge_lock
    with pytest.raises(ConfigError, match="ALARMFLOW_CONVERGE_LOCK"):
        load_settings({"ALARMFLOW_CONVERGE_LOCK": "maybe"})


def test_a_config_file_is_read_as_a_shell_or_docker_env_file_would(tmp_path):
    path = tmp_path / "alarmflow.env"
    path.write_text(
        "# alarmflow\n"
        'export ALARMFLOW_KEY_PREFIX="bk_bkmonitorv3.ee"\n'
        "ALARMFLOW_DLQ_TOPIC='dead letters'\n"
        "ALARMFLOW_TAIL=0  # stop at the end\n"
        'ALARMFLOW_KAFKA_SASL_PASSWORD="p#ss w\\"rd"\n'
        "ALARMFLOW_KAFKA_SECURITY_PROTOCOL=SASL_SSL\n"
        "ALARMFLOW_KAFKA_SASL_MECHANISM=PLAIN\n"
        "ALARMFLOW_KAFKA_SASL_USERNAME=alarmflow\n"
    )
    settings = load_settings({"ALARMFLOW_CONFIG": str(path)})
    assert settings.key_prefix == "bk_bkmonitorv3.ee"
    assert (settings.dlq_topic, settings.tail) == ("dead letters", False)
    assert settings.kafka_sasl_password.reveal() == 'p#ss w"rd'


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda d: d / "missing.env", "No such file or directory"),
        (lambda d: d, "Is a directory"),
        (
            lambda d: (d / "latin1.env").write_bytes(b"ALARMFLOW_TAIL=\xe9") and d / "latin1.env",
            "UTF-8",
        ),
    ],
)
def test_a_config_file_that_cannot_be_read_is_a_config_error(tmp_path, make, reason):
    path = make(tmp_path)
    with pytest.raises(ConfigError) as error:
        load_settings({"ALARMFLOW_CONFIG": str(path)})
    assert str(error.value) == (
        f"ALARMFLOW_CONFIG={str(path)!r}: expected a readable file of KEY=VALUE lines ({reason})"
        if reason != "UTF-8"
        else f"ALARMFLOW_CONFIG={str(path)!r}: expected a readable file of KEY=VALUE lines "
        "(not UTF-8 text)"
    )


def test_an_unknown_name_is_warned_about_with_the_closest_known_one(tmp_path, caplog):
    path = tmp_path / "alarmflow.env"
    path.write_text("ALARMFLOW_DLQ_TOPCI=x\n")
    env = {
        "ALARMFLOW_CONFIG": str(path),
        "ALARMFLOW_REDIS_ULR": "redis://h/9",
        "ALARMFLOW_WHATEVER_THIS_IS": "1",
        "ALARMFLOW_KAFKA_PORT": "9092",  # scripts/services reads it
    }
    with caplog.at_level("WARNING", logger="alarmflow.config"):
        settings = load_settings(env)
    assert settings.redis_url == "redis://127.0.0.1:6379/9"
    assert caplog.messages == [
        "ALARMFLOW_DLQ_TOPCI is not a setting, ignored (did you mean ALARMFLOW_DLQ_TOPIC?)",
        "ALARMFLOW_REDIS_ULR is not a setting, ignored (did you mean ALARMFLOW_REDIS_URL?)",
        "ALARMFLOW_WHATEVER_THIS_IS is not a setting, ignored (no setting has this name)",
    ]


@pytest.mark.parametrize("db", ["/nine", "/9x", "/-1", "/9/1", "?db=x", "/9?db=8"])
def test_a_mistyped_database_is_refused_with_the_password_masked(db):
    with pytest.raises(ConfigError) as error:
        load_settings({"ALARMFLOW_REDIS_URL": f"redis://:S3cr3t@h:6379{db}"})
    lines = str(error.value).splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"ALARMFLOW_REDIS_URL='redis://:***@h:6379{db}': expected ")
    assert "database number" in lines[0]


def test_database_numbers_beyond_15_are_left_to_the_server_to_refuse():
    # A server configured with `databases 32` has them; the start check asks the server.
    assert load_settings({"ALARMFLOW_REDIS_URL": "redis://h/20"}).redis_dbs()[Backend.QUEUE] == 20


def test_service_keys_on_another_server_are_refused_with_passwords_masked():
    env = {
        "ALARMFLOW_REDIS_URL": "redis://:S3cr3t@h1:6379/9",
        "ALARMFLOW_REDIS_SERVICE_URL": "redis://svc:Other@h2:6379/10",
    }
    with pytest.raises(ConfigError) as error:
        load_settings(env)
    message = str(error.value)
    assert message.startswith(
        "ALARMFLOW_REDIS_SERVICE_URL='redis://svc:***@h2:6379/10': expected a database on the "
        "server of ALARMFLOW_REDIS_URL (redis://:***@h1:6379/9)"
    )
    assert "S3cr3t" not in message and "Other" not in message


def test_the_same_server_with_other_credentials_is_the_same_server():
    env = {
        "ALARMFLOW_REDIS_URL": "redis://:S3cr3t@h1:6379/9",
        "ALARMFLOW_REDIS_SERVICE_URL": "redis://svc:Other@h1/10",
    }
    assert load_settings(env).redis_dbs()[Backend.SERVICE] == 10


SASL = {
    "ALARMFLOW_KAFKA_BOOTSTRAP": "kafka1:9094,kafka2:9094",
    "ALARMFLOW_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
    "ALARMFLOW_KAFKA_SASL_MECHANISM": "scram-sha-512",
    "ALARMFLOW_KAFKA_SASL_USERNAME": "alarmflow",
    "ALARMFLOW_KAFKA_SASL_PASSWORD": "K4fka-S3cret",
}


def test_kafka_security_settings_are_read_and_the_password_is_never_shown():
    settings = load_settings(SASL)
    assert settings.kafka_security_protocol == "SASL_SSL"
    assert settings.kafka_sasl_mechanism == "SCRAM-SHA-512"
    assert settings.kafka_sasl_password.reveal() == "K4fka-S3cret"
    assert f"{settings.kafka_sasl_password}" == "***"
    assert "K4fka-S3cret" not in repr(settings)
    assert settings.secrets() == ("K4fka-S3cret",)


def test_sasl_needs_its_mechanism_user_and_password():
    with pytest.raises(ConfigError) as error:
        load_settings({"ALARMFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"})
    assert str(error.value).splitlines() == [
        f"ALARMFLOW_KAFKA_SASL_{name}='': expected a value with "
        "ALARMFLOW_KAFKA_SECURITY_PROTOCOL=SASL_SSL"
        for name in ("MECHANISM", "USERNAME", "PASSWORD")
    ]


def test_security_settings_that_would_be_ignored_are_refused_masked(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("pem")
    env = {
        "ALARMFLOW_KAFKA_SASL_PASSWORD": "K4fka-S3cret",
        "ALARMFLOW_KAFKA_SSL_CA_LOCATION": str(ca),
        "ALARMFLOW_REDIS_SSL_CA_LOCATION": str(ca),
        "ALARMFLOW_REDIS_SSL_KEY_PASSWORD": "R3dis-Key-S3cret",
    }
    with pytest.raises(ConfigError) as error:
        load_settings(env)
    assert str(error.value).splitlines() == [
        "ALARMFLOW_KAFKA_SASL_PASSWORD='***': expected only with "
        "ALARMFLOW_KAFKA_SECURITY_PROTOCOL=SASL_SSL or SASL_PLAINTEXT",
        f"ALARMFLOW_KAFKA_SSL_CA_LOCATION={str(ca)!r}: expected only with "
        "ALARMFLOW_KAFKA_SECURITY_PROTOCOL=SSL or SASL_SSL",
        f"ALARMFLOW_REDIS_SSL_CA_LOCATION={str(ca)!r}: expected only with a rediss:// "
        "ALARMFLOW_REDIS_URL (TLS)",
        "ALARMFLOW_REDIS_SSL_KEY_PASSWORD='***': expected only with a rediss:// "
        "ALARMFLOW_REDIS_URL (TLS)",
    ]


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("ALARMFLOW_KAFKA_SECURITY_PROTOCOL", "SASL-SSL", "expected one of PLAINTEXT, SSL, "),
        ("ALARMFLOW_KAFKA_SASL_MECHANISM", "SCRAM", "expected one of PLAIN, SCRAM-SHA-256, "),
        (
            "ALARMFLOW_KAFKA_SSL_CA_LOCATION",
            "/no/ca.pem",
            "expected the path of a readable PEM file",
        ),
        ("ALARMFLOW_KAFKA_CONFIG", "[1]", "expected a JSON object of librdkafka properties"),
        ("ALARMFLOW_KAFKA_CONFIG", '{"sasl.password": "x"}', "(use ALARMFLOW_KAFKA_SASL_PASSWORD)"),
    ],
)
def test_a_bad_security_value_is_one_line(name, value, expected):
    with pytest.raises(ConfigError) as error:
        load_settings({**SASL, name: value})
    lines = str(error.value).splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"{name}=")
    assert expected in lines[0]
    assert "K4fka-S3cret" not in lines[0]


def test_kafka_config_passes_librdkafka_properties_through_and_masks_secret_ones():
    value = (
        '{"client.id": "alarmflow-eu", "socket.keepalive.enable": true, '
        '"ssl.keystore.password": "ks"}'
    )
    settings = load_settings({"ALARMFLOW_KAFKA_CONFIG": value})
    assert settings.kafka_config == {
        "client.id": "alarmflow-eu",
        "socket.keepalive.enable": "true",
        "ssl.keystore.password": "ks",
    }
    assert "'ssl.keystore.password': '***'" in repr(settings)
    with pytest.raises(ConfigError) as error:
        load_settings({"ALARMFLOW_KAFKA_CONFIG": value.replace("}", ', "acks": [1]}')})
    assert '"ssl.keystore.password":"***"' in str(error.value)
    assert '"ks"' not in str(error.value)


def test_a_command_ends_on_a_missing_config_file_with_one_line_and_exit_2(tmp_path, capsys):
    missing = tmp_path / "alarmflow.env"
    with pytest.raises(SystemExit) as exit_:
        settings_or_exit({"ALARMFLOW_CONFIG": str(missing)})
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"alarmflow: config error: ALARMFLOW_CONFIG={str(missing)!r}: expected a readable file "
        "of KEY=VALUE lines (No such file or directory)"
    ]


SENTINEL = "redis+sentinel://:pw@s1:26379,s2:26380/9?master=bkmonitor"


def test_a_sentinel_url_names_the_sentinels_the_master_and_the_database():
    settings = load_settings({"ALARMFLOW_REDIS_URL": SENTINEL})
    assert (
        settings.redis_service_url == "redis+sentinel://:pw@s1:26379,s2:26380/10?master=bkmonitor"
    )
    assert {b.value: db for b, db in settings.redis_dbs().items()} == {
        "queue": 9,
        "service": 10,
        "cache": 8,
    }
    other_master = "redis+sentinel://:pw@s1:26379,s2:26380/10?master=other"
    with pytest.raises(ConfigError, match="one atomic script"):
        load_settings(
            {"ALARMFLOW_REDIS_URL": SENTINEL, "ALARMFLOW_REDIS_SERVICE_URL": other_master}
        )


def test_a_sentinel_url_without_a_master_name_is_refused():
    with pytest.raises(ConfigError, match=r"ALARMFLOW_REDIS_URL=.*\?master=NAME"):
        load_settings({"ALARMFLOW_REDIS_URL": "redis+sentinel://s1:26379/9"})


def test_the_sentinel_password_is_a_secret_used_only_with_sentinels():
    env = {"ALARMFLOW_REDIS_URL": SENTINEL, "ALARMFLOW_REDIS_SENTINEL_PASSWORD": "s3cret"}
    settings = load_settings(env)
    assert settings.redis_sentinel_password.reveal() == "s3cret"
    assert "s3cret" in settings.secrets() and "s3cret" not in repr(settings)
    with pytest.raises(ConfigError, match="SENTINEL_PASSWORD='\\*\\*\\*': expected only with"):
        load_settings({"ALARMFLOW_REDIS_SENTINEL_PASSWORD": "s3cret"})


def test_the_sentinel_user_is_used_only_with_sentinels():
    env = {"ALARMFLOW_REDIS_URL": SENTINEL, "ALARMFLOW_REDIS_SENTINEL_USERNAME": "alarmflow"}
    assert load_settings(env).redis_sentinel_username == "alarmflow"
    with pytest.raises(ConfigError, match="SENTINEL_USERNAME='alarmflow': expected only with"):
        load_settings({"ALARMFLOW_REDIS_SENTINEL_USERNAME": "alarmflow"})


def test_redis_outage_and_replica_settings():
    settings = load_settings({})
    assert (settings.redis_outage_s, settings.redis_replicas) == (300, 0)
    env = {"ALARMFLOW_REDIS_OUTAGE_S": "30", "ALARMFLOW_REDIS_MIN_REPLICAS": "1"}
    assert (load_settings(env).redis_outage_s, load_settings(env).redis_replicas) == (30, 1)
    assert load_settings({"ALARMFLOW_REDIS_URL": SENTINEL}).redis_replicas == 1
    with pytest.raises(ConfigError, match="ALARMFLOW_REDIS_OUTAGE_S='-1'"):
        load_settings({"ALARMFLOW_REDIS_OUTAGE_S": "-1"})


def test_kafka_outage_setting():
    assert load_settings({}).kafka_outage_s == 300
    assert load_settings({"ALARMFLOW_KAFKA_OUTAGE_S": "45"}).kafka_outage_s == 45
    with pytest.raises(ConfigError, match="ALARMFLOW_KAFKA_OUTAGE_S='0'"):
        load_settings({"ALARMFLOW_KAFKA_OUTAGE_S": "0"})


def test_the_start_check_names_the_sentinels_when_none_answers(free_port):
    port = free_port()
    url = f"redis+sentinel://:secret@127.0.0.1:{port}/9?master=bkmonitor"
    settings = load_settings({"ALARMFLOW_REDIS_URL": url})
    with pytest.raises(ConnectFailed) as failed:
        check_redis(url, settings, "ALARMFLOW_REDIS_URL", timeout=1)
    assert f"master bkmonitor of sentinels 127.0.0.1:{port}" in str(failed.value)
    assert "secret" not in str(failed.value)


PASSWORDS = ["pa/ss-word", "pa ss word", "p@ss:w/rd x", "a://b@c", ":@/"]


@pytest.mark.parametrize("password", PASSWORDS)
@pytest.mark.parametrize(
    ("name", "url"),
    [
        ("ALARMFLOW_REDIS_URL", "redis://alarm:{}@redis.example:6379/9x"),
        ("ALARMFLOW_REDIS_SERVICE_URL", "rediss://:{}@redis.example/nine"),
        ("ALARMFLOW_REDIS_CACHE_URL", "redis://alarm:{}@redis.example:0/8"),
        ("ALARMFLOW_REDIS_URL", "redis+sentinel://:{}@s1:26379,s2:26380/9x?master=m"),
    ],
)
def test_a_url_password_is_masked_whatever_characters_it_has(name, url, password):
    with pytest.raises(ConfigError) as error:
        load_settings({name: url.format(password)})
    [line] = str(error.value).splitlines()
    assert line.startswith(f"{name}={url.format('***')!r}: expected ")
    assert password not in line


def test_a_valid_url_s_password_is_a_secret_whatever_characters_it_has():
    password = "p@ss: word"
    url = f"redis://alarm:{password}@redis.example:6379/9"
    settings = load_settings({"ALARMFLOW_REDIS_URL": url})
    assert settings.secrets() == (password,)
    assert password not in repr(settings)
    assert "redis_url='redis://alarm:***@redis.example:6379/9'" in repr(settings)


def test_the_settings_repr_masks_each_url_apart_from_the_fields_after_it():
    env = {
        "ALARMFLOW_REDIS_URL": "redis://:pw@h:6379/9",
        "ALARMFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "ALARMFLOW_KAFKA_SASL_MECHANISM": "PLAIN",
        "ALARMFLOW_KAFKA_SASL_USERNAME": "alarm@corp",
        "ALARMFLOW_KAFKA_SASL_PASSWORD": "K4fka-S3cret",
    }
    assert "kafka_sasl_username='alarm@corp'" in repr(load_settings(env))


@pytest.mark.parametrize(
    "value",
    [
        '[{"sasl.password": "hunter2secret"}]',
        '"hunter2secret"',
        '{"client.id": {"sasl.password": "hunter2secret"}}',
        '{"sasl.oauthbearer.config": "clientSecret=hunter2secret", "acks": [1]}',
        '{"sasl.oauthbearer.config": "x", "acks": [1], "ssl.keystore.password": "hunter2secret"}',
    ],
)
def test_kafka_config_is_shown_without_its_secrets_whatever_its_shape(value):
    with pytest.raises(ConfigError) as error:
        load_settings({"ALARMFLOW_KAFKA_CONFIG": value})
    [line] = str(error.value).splitlines()
    assert line.startswith("ALARMFLOW_KAFKA_CONFIG=")
    assert "hunter2secret" not in line and "***" in line


def test_an_oauthbearer_config_is_a_secret():
    value = '{"sasl.oauthbearer.config": "clientSecret=hunter2secret"}'
    settings = load_settings({"ALARMFLOW_KAFKA_CONFIG": value})
    assert settings.secrets() == ("clientSecret=hunter2secret",)
    assert "hunter2secret" not in repr(settings)


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/9?socket_timeout=2.5&socket_connect_timeout=1",
        "rediss://:pw@h:6380/9?db=9&socket_timeout=5",
        "unix:///tmp/r.sock?db=9&socket_connect_timeout=0.5",
        "redis+sentinel://:pw@s1,s2:26380/9?master=m&db=9",
    ],
)
def test_a_redis_url_may_have_the_parameters_alarmflow_knows(url):
    assert load_settings({"ALARMFLOW_REDIS_URL": url}).redis_url == url


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (
            "?foo=bar",
            "expected no URL parameter but db, socket_timeout, socket_connect_timeout (not foo)",
        ),
        ("?socket_timeout=abc", "expected socket_timeout in seconds, a number above 0"),
        (
            "?socket_connect_timeout=-1",
            "expected socket_connect_timeout in seconds, a number above 0",
        ),
        ("?socket_timeout=0", "expected socket_timeout in seconds, a number above 0"),
        ("?socket_timeout=nan", "expected socket_timeout in seconds, a number above 0"),
    ],
)
def test_a_redis_url_parameter_alarmflow_does_not_know_is_one_config_line(query, expected):
    url = f"redis://127.0.0.1:16379/9{query}"
    with pytest.raises(ConfigError) as error:
        load_settings({"ALARMFLOW_REDIS_URL": url})
    assert str(error.value).splitlines() == [f"ALARMFLOW_REDIS_URL={url!r}: {expected}"]


def test_a_password_given_as_a_redis_url_parameter_is_refused_masked():
    url = "redis://h:6379/9?socket_timeout=1&sentinel_password=S3cr3t&x=1"
    with pytest.raises(ConfigError) as error:
        load_settings({"ALARMFLOW_REDIS_URL": url})
    assert str(error.value) == (
        "ALARMFLOW_REDIS_URL='redis://h:6379/9?socket_timeout=1&sentinel_password=***&x=1': "
        "expected no URL parameter but db, socket_timeout, socket_connect_timeout "
        "(not sentinel_password)"
    )


def test_the_derived_urls_keep_the_queue_url_s_parameters_but_its_database():
    settings = load_settings({"ALARMFLOW_REDIS_URL": "redis://h:6379?db=9&socket_timeout=5"})
    assert settings.redis_service_url == "redis://h:6379/10?socket_timeout=5"
    unix = load_settings({"ALARMFLOW_REDIS_URL": "unix:///tmp/r.sock?socket_timeout=5&db=9"})
    assert unix.redis_cache_url == "unix:///tmp/r.sock?socket_timeout=5&db=8"


def test_a_sentinel_url_has_no_parameter_but_master_and_db():
    url = "redis+sentinel://s1/9?master=m&socket_timeout=1"
    with pytest.raises(ConfigError) as error:
        load_settings({"ALARMFLOW_REDIS_SERVICE_URL": url, "ALARMFLOW_REDIS_URL": SENTINEL})
    assert str(error.value).splitlines() == [
        f"ALARMFLOW_REDIS_SERVICE_URL={url!r}: expected no URL parameter but master, db "
        "(not socket_timeout)"
    ]


def test_settings_that_do_not_fit_together_are_reported_beside_a_bad_url_or_protocol(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("pem")
    env = {
        "ALARMFLOW_KAFKA_SASL_PASSWORD": "K4fka-S3cret",
        "ALARMFLOW_REDIS_URL": "http://x",
    }
    with pytest.raises(ConfigError) as error:
        load_settings(env)
    assert str(error.value).splitlines() == [
        "ALARMFLOW_REDIS_URL='http://x': expected a redis:// , rediss:// , unix:// or "
        "redis+sentinel:// URL",
        "ALARMFLOW_KAFKA_SASL_PASSWORD='***': expected only with "
        "ALARMFLOW_KAFKA_SECURITY_PROTOCOL=SASL_SSL or SASL_PLAINTEXT",
    ]
    env = {
        "ALARMFLOW_KAFKA_SECURITY_PROTOCOL": "TLS",
        "ALARMFLOW_REDIS_SSL_CA_LOCATION": str(ca),
    }
    with pytest.raises(ConfigError) as error:
        load_settings(env)
    assert str(error.value).splitlines() == [
        "ALARMFLOW_KAFKA_SECURITY_PROTOCOL='TLS': expected one of PLAINTEXT, SSL, SASL_PLAINTEXT, "
        "SASL_SSL",
        f"ALARMFLOW_REDIS_SSL_CA_LOCATION={str(ca)!r}: expected only with a rediss:// "
        "ALARMFLOW_REDIS_URL (TLS)",
    ]
