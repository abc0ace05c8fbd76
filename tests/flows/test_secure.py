"""The flows over SASL_SSL Kafka and a TLS Redis with an ACL user: the alert flow end to end
with its DLQ, replay, the converge flow's decision and audit producers and lock; start failures
in seconds with one line and exit 2; and no secret in anything a run shows."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter

import orjson
import pytest

from alarmflow.config import load_settings
from alarmflow.connections import redis_client
from alarmflow.kafka_tools import produce, read_all
from bench.converge_throughput import by_dimension, storm
from operators.converge.audit import decision_message
from operators.converge.context import parse_action
from operators.converge.driver import run as run_engine
from tests.conftest import SecureServices
from tests.flows.flowrun import REPO, RUN_TIMEOUT_S, FlowEnv, bytewax_command, run, start
from tests.flows.test_alert import BAD, EXPECTED_LISTS, VALID, lists_by_event_id
from tests.flows.test_converge import BAD as CONVERGE_BAD

pytestmark = pytest.mark.integration

START_FAILURE_S = 20.0
"""Python and Bytewax start in ~2 s here; the checks give up within a second of a refusal."""


def metrics_text(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def total(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def wait_for_metrics(port: int, proc: subprocess.Popen, consumed: int, written: int) -> str:
    """The metrics page once the flow has consumed and written that much."""
    deadline = time.monotonic() + 90
    text = ""
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the flow stopped early"
        try:
            text = metrics_text(port)
        except OSError:
            text = ""
        done = total(text, "alarmflow_consumed_total") == consumed
        if done and total(text, "alarmflow_written_total") == written:
            return text
        time.sleep(0.2)
    raise AssertionError(f"not done within 90 s; last metrics:\n{text}")


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "PLAIN"])
def test_the_alert_flow_runs_over_sasl_ssl_kafka_and_tls_redis_and_shows_no_secret(
    secure_flow_env: FlowEnv, secure_services: SecureServices, free_port, tmp_path, mechanism
):
    env = secure_flow_env
    security = secure_services.environ(mechanism)
    settings = load_settings(env.environ(**security))
    messages = [orjson.dumps(a) for a in VALID] + list(BAD)
    produce(settings, env.topics["ALERT"], messages)
    port = free_port()
    log = tmp_path / "run_access.log"
    running = env.environ(ALARMFLOW_TAIL="1", ALARMFLOW_METRICS_PORT=str(port), **security)
    command = [sys.executable, "-m", "alarmflow.run_access", "--access-type", "alert"]
    proc = start(command, running, log)
    try:
        written = sum(len(v) for v in EXPECTED_LISTS.values())
        metrics = wait_for_metrics(port, proc, len(messages), written)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)

    client = redis_client(settings.redis_url, settings)
    assert lists_by_event_id(client, env.prefix) == EXPECTED_LISTS
    dlq = read_all(settings, env.dlq_topic)
    assert Counter(orjson.loads(m)["reason"] for m in dlq) == Counter(BAD.values())
    report, help_ = (
        subprocess.run(
            [sys.executable, "-m", *args],
            env=env.environ(**security),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
        )
        for args in (["alarmflow.report"], ["alarmflow.run_access", "--help"])
    )
    assert report.returncode == help_.returncode == 0, report.stderr + help_.stderr
    assert "rediss://alarmflow:***@127.0.0.1" in report.stdout
    printed = [report.stdout, report.stderr, help_.stdout, help_.stderr]
    shown = "\n".join([log.read_text(), metrics, *printed, *(m.decode() for m in dlq)])
    for secret in (secure_services.kafka_password, secure_services.redis_password):
        assert secret not in shown


def start_failure(env: FlowEnv, **settings: str) -> tuple[float, list[str], str]:
    """Run the alert flow; its time to fail, its "cannot start" lines and all it printed."""
    started = time.monotonic()
    done = subprocess.run(
        bytewax_command("flows.alert"),
        env=env.environ(**settings),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    elapsed = time.monotonic() - started
    printed = done.stdout + done.stderr
    assert done.returncode == 2, f"exited {done.returncode}:\n{printed[-3000:]}"
    return elapsed, [line for line in printed.splitlines() if "cannot start" in line], printed


def wrong_kafka_password(services: SecureServices) -> dict[str, str]:
    return {**services.environ(), "ALARMFLOW_KAFKA_SASL_PASSWORD": "wrong-kafka-password"}


def untrusted_kafka_certificate(services: SecureServices) -> dict[str, str]:
    return {**services.environ(), "ALARMFLOW_KAFKA_SSL_CA_LOCATION": str(services.untrusted.ca)}


def plaintext_kafka_client(services: SecureServices) -> dict[str, str]:
    redis_only = {k: v for k, v in services.environ().items() if "REDIS" in k}
    return {**redis_only, "ALARMFLOW_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"}


def wrong_redis_password(services: SecureServices) -> dict[str, str]:
    url = services.redis.url(9).replace(services.redis_password, "wrong-redis-password")
    return {**services.environ(), "ALARMFLOW_REDIS_URL": url}


def untrusted_redis_certificate(services: SecureServices) -> dict[str, str]:
    return {**services.environ(), "ALARMFLOW_REDIS_SSL_CA_LOCATION": str(services.untrusted.ca)}


def plaintext_redis_client(services: SecureServices) -> dict[str, str]:
    kafka_only = {k: v for k, v in services.environ().items() if "KAFKA" in k}
    url = services.redis.url(9).replace("rediss://", "redis://")
    return {**kafka_only, "ALARMFLOW_REDIS_URL": url}


@pytest.mark.parametrize(
    ("settings_of", "service", "says"),
    [
        (wrong_kafka_password, "Kafka", "SASL authentication error"),
        (untrusted_kafka_certificate, "Kafka", "certificate verify failed"),
        (plaintext_kafka_client, "Kafka", "is it a TLS or SASL listener"),
        (wrong_redis_password, "Redis", "refused the credentials of user 'alarmflow'"),
        (untrusted_redis_certificate, "Redis", "certificate verify failed"),
        (plaintext_redis_client, "Redis", "is it a TLS port? use rediss://"),
    ],
)
def test_a_refused_connection_stops_the_flow_at_start_with_one_line_and_exit_2(
    secure_flow_env: FlowEnv, secure_services: SecureServices, settings_of, service, says
):
    elapsed, lines, printed = start_failure(secure_flow_env, **settings_of(secure_services))

    assert elapsed < START_FAILURE_S
    assert len(lines) == 1, printed[-3000:]
    port = (secure_services.listener if service == "Kafka" else secure_services.redis).port
    assert f"alarmflow: cannot start: {service} at 127.0.0.1:{port}" in lines[0]
    assert says in lines[0]
    for secret in (
        secure_services.kafka_password,
        secure_services.redis_password,
        "wrong-kafka-password",
        "wrong-redis-password",
    ):
        assert secret not in printed


def test_a_replay_from_a_time_reads_and_writes_over_the_secured_services(
    secure_flow_env: FlowEnv, secure_services: SecureServices
):
    env = secure_flow_env
    security = secure_services.environ()
    settings = load_settings(env.environ(**security))
    produce(settings, env.topics["ALERT"], [orjson.dumps(a) for a in VALID])
    stem = env.prefix.split(".")[0]
    replay = ["alarmflow.replay", "flows.alert", "--prefix", f"{stem}r.ee"]
    done = subprocess.run(
        [sys.executable, "-m", *replay, "--from-time", "1000000000"],
        env=env.environ(**security),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    assert f"{len(VALID)}/{len(VALID)} messages" in done.stderr
    client = redis_client(settings.redis_url, settings)
    assert lists_by_event_id(client, f"{stem}r.ee") == EXPECTED_LISTS
    for secret in (secure_services.kafka_password, secure_services.redis_password):
        assert secret not in done.stdout + done.stderr


def test_the_converge_flow_sends_decisions_and_audit_over_sasl_ssl_with_its_redis_lock(
    secure_services: SecureServices, key_prefix: str
):
    stem = key_prefix.split(".")[0]
    action, dlq, decisions, audit = (f"{stem}.{n}" for n in ("action", "dlq", "dec", "audit"))
    secure_services.kafka.create_topics([action, dlq, decisions, audit], 1)
    env = FlowEnv(
        secure_services.listener.bootstrap,
        secure_services.redis.url(9),
        key_prefix,
        {"ACTION": action},
        dlq,
    )
    running = env.environ(
        ALARMFLOW_DECISION_TOPIC=decisions,
        ALARMFLOW_AUDIT_TOPIC=audit,
        ALARMFLOW_CONVERGE_LOCK="1",  # bkmonitor's lock, on the TLS service database
        **secure_services.environ(),
    )
    settings = load_settings(running)
    messages = storm(200)
    produce(settings, action, [orjson.dumps(m) for m in messages], by_dimension)
    produce(settings, action, list(CONVERGE_BAD))

    run(bytewax_command("flows.converge"), running)

    reference = run_engine([parse_action(m) for m in messages])
    got = {m["id"]: m for m in map(orjson.loads, read_all(settings, decisions))}
    assert got == {d.id: orjson.loads(orjson.dumps(decision_message(d))) for d in reference}
    assert sorted(orjson.loads(m)["decision_id"] for m in read_all(settings, audit)) == sorted(got)
    reasons = Counter(orjson.loads(m)["reason"] for m in read_all(settings, dlq))
    assert reasons == Counter(CONVERGE_BAD.values())
