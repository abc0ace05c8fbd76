"""The converge flow on the real Kafka broker and Redis, run as ``python -m bytewax.run``."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter

import orjson
import pytest
import redis

from alarmflow.kafka_tools import produce, read_all
from alarmflow.launch import init_recovery
from alarmflow.report import snapshot
from bench.converge_throughput import by_dimension, storm
from operators.converge.audit import audit_record, decision_message
from operators.converge.context import parse_action
from operators.converge.driver import run as run_engine
from tests.flows.flowrun import FlowEnv, bytewax_command, recovery_snapshots, run, start

pytestmark = pytest.mark.integration

BAD = {
    b"not json at all": "not_json",
    orjson.dumps({"create_time": 1, "alerts": []}): "missing_field",
    orjson.dumps({"id": 1, "create_time": 1, "converge_config": [1]}): "wrong_type",
}


@pytest.fixture
def action_env(make_flow_env) -> FlowEnv:
    return make_flow_env(3, "ACTION")


def outputs(env: FlowEnv, kafka_topics, name: str) -> tuple[FlowEnv, dict[str, str]]:
    """``env`` under its own key prefix, with its own decision and audit topics."""
    decisions, audit = kafka_topics(f"{name}-decisions", f"{name}-audit", partitions=1)
    own = FlowEnv(env.bootstrap, env.redis_url, env.prefix + name, env.topics, env.dlq_topic)
    return own, {"ALARMFLOW_DECISION_TOPIC": decisions, "ALARMFLOW_AUDIT_TOPIC": audit}


def read_decisions(env: FlowEnv, topics: dict[str, str]) -> dict[str, dict]:
    """Decision messages by id; a replayed duplicate must be identical."""
    found: dict[str, dict] = {}
    for raw in read_all(env.bootstrap, topics["ALARMFLOW_DECISION_TOPIC"]):
        message = orjson.loads(raw)
        assert found.setdefault(message["id"], message) == message
    return found


def audit_lists(client: redis.Redis, prefix: str) -> dict[str, list[dict]]:
    lists = {}
    for key in client.scan_iter(match=f"{prefix}.fta_action.audit.*"):
        alert = key.decode().rsplit(".", 1)[1]
        lists[alert] = [orjson.loads(e) for e in reversed(client.lrange(key, 0, -1))]
    return lists


def contents(client: redis.Redis, prefix: str) -> dict:
    return {k[len(prefix) :]: v for k, v in snapshot(client, prefix).items()}


@pytest.mark.parametrize("lock", ["0", "1"])
def test_a_storm_gives_the_engine_s_decisions_audit_and_index(
    action_env, kafka_topics, redis_server, lock
):
    """With ``ALARMFLOW_CONVERGE_LOCK=1`` one deployment never finds its own lock busy."""
    messages = storm(1000)
    produce(
        action_env.bootstrap,
        action_env.topics["ACTION"],
        [orjson.dumps(m) for m in messages],
        by_dimension,
    )
    produce(action_env.bootstrap, action_env.topics["ACTION"], list(BAD))
    env, topics = outputs(action_env, kafka_topics, "storm")

    run(bytewax_command("flows.converge"), env.environ(ALARMFLOW_CONVERGE_LOCK=lock, **topics))

    reference = run_engine([parse_action(m) for m in messages])
    got = read_decisions(env, topics)
    assert got == {d.id: orjson.loads(orjson.dumps(decision_message(d))) for d in reference}
    assert Counter(m["decision"] for m in got.values()) == {
        "execute": 440,
        "skipped": 560,
        "sleep": 80,
        "collect": 22,
        "suppressed": 27,
    }
    audit = [orjson.loads(m) for m in read_all(env.bootstrap, topics["ALARMFLOW_AUDIT_TOPIC"])]
    assert sorted(a["decision_id"] for a in audit) == sorted(got)

    service = redis.Redis.from_url(redis_server.url(10))
    expected: dict[str, list[dict]] = {}
    for decision in reference:
        for alert in decision.alert_ids:
            expected.setdefault(alert, []).append(
                orjson.loads(orjson.dumps(audit_record(decision)))
            )
    assert audit_lists(service, env.prefix) == expected
    assert len(expected) == 1000
    index = f"{env.prefix}.fta_action.converge.1001.action_info.1001_abnormal_7"
    assert service.zcard(index) == 5
    assert 0 < service.ttl(index) <= 1800

    locks = list(service.scan_iter(match=f"{env.prefix}.fta_action.converge.*.process.lock"))
    assert len(locks) == (4 * 40 if lock == "1" else 0), "one per converged dimension"
    assert {int(service.get(k)) for k in locks} <= {0}

    dlq = [orjson.loads(m) for m in read_all(env.bootstrap, env.dlq_topic)]
    assert Counter(m["reason"] for m in dlq) == Counter(BAD.values())


def test_sigkill_and_resume_gives_the_same_decisions_once(
    action_env, kafka_topics, redis_server, tmp_path
):
    produce(
        action_env.bootstrap,
        action_env.topics["ACTION"],
        [orjson.dumps(m) for m in storm(5000)],
        by_dimension,
    )
    queue = redis.Redis.from_url(action_env.redis_url)
    service = redis.Redis.from_url(redis_server.url(10))
    reference, reference_topics = outputs(action_env, kafka_topics, "ref")
    run(bytewax_command("flows.converge"), reference.environ(**reference_topics))

    crashed, crashed_topics = outputs(action_env, kafka_topics, "crash")
    recovery = tmp_path / "recovery"
    init_recovery(recovery, 1)
    command = bytewax_command("flows.converge", "-r", str(recovery), "-s", "1", "-b", "0")
    proc = start(command, crashed.environ(**crashed_topics), tmp_path / "run1.log")
    pattern = f"{crashed.prefix}.fta_action.converge.decision.*"
    deadline = time.monotonic() + 120
    while not recovery_snapshots(recovery) and time.monotonic() < deadline:
        assert proc.poll() is None, "the flow ended before it could be killed"
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert recovery_snapshots(recovery), "no snapshot was taken before the kill"
    written = sum(1 for _ in service.scan_iter(match=pattern, count=1000))

    run(command, crashed.environ(**crashed_topics))

    expected = read_decisions(reference, reference_topics)
    assert written < len(expected), "the kill came after the last decision"
    assert read_decisions(crashed, crashed_topics) == expected
    for client in (queue, service):
        want = {
            k[len(reference.prefix) :]: v for k, v in snapshot(client, reference.prefix).items()
        }
        got = {k[len(crashed.prefix) :]: v for k, v in snapshot(client, crashed.prefix).items()}
        assert got == want
