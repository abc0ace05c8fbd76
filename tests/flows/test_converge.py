"""The converge flow on the real Kafka broker and Redis, run as ``python -m bytewax.run``.

Expected decision counts come from :mod:`tests.flows.converge_model`, a direct model of
bkmonitor's rules written for these tests; the flow must also give exactly the pure engine's
decisions (ids, times, reasons)."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from dataclasses import dataclass, replace

import orjson
import pytest
import redis

from alarmflow.kafka_tools import produce, read_all
from alarmflow.launch import init_recovery
from bench.converge_throughput import by_dimension, storm
from operators.converge.audit import audit_record, decision_message
from operators.converge.context import parse_action
from operators.converge.driver import run as run_engine
from operators.converge.plan import plan
from tests.flows.converge_model import expected_counts
from tests.flows.flowrun import (
    REPO,
    FlowEnv,
    bytewax_command,
    crash_soak,
    recovery_commit,
    run,
    snapshot_dbs,
    start,
    wait_until,
)

pytestmark = pytest.mark.integration

NOW = time.time()
BAD = {
    b"not json at all": "not_json",
    orjson.dumps({"create_time": 1, "alerts": []}): "missing_field",
    orjson.dumps({"id": 1, "create_time": NOW, "converge_config": [1]}): "wrong_type",
    orjson.dumps({"id": 2, "create_time": 1e300, "alerts": []}): "future_time",
    orjson.dumps({"id": 3, "create_time": NOW, "alerts": [{"id": "a", "dimensions": 1}]}): (
        "wrong_type"
    ),
    orjson.dumps({"id": 4, "create_time": 1.7e9}): "too_old",
}


@pytest.fixture
def action_env(make_flow_env) -> FlowEnv:
    return make_flow_env(3, "ACTION")


@dataclass(frozen=True)
class ConvergeEnv(FlowEnv):
    """A flow environment with its own decision and audit topics."""

    decision_topic: str = ""
    audit_topic: str = ""

    def environ(self, **extra: str) -> dict[str, str]:
        topics = {"ALARMFLOW_DECISION_TOPIC": self.decision_topic}
        topics["ALARMFLOW_AUDIT_TOPIC"] = self.audit_topic
        return super().environ(**topics, **extra)


def outputs(env: FlowEnv, kafka_topics, name: str, prefix: str = "") -> ConvergeEnv:
    """``env`` under its own key prefix (``prefix``, else ``name``), with its own decision and
    audit topics."""
    decisions, audit = kafka_topics(f"{name}-decisions", f"{name}-audit", partitions=1)
    prefix = env.prefix + (prefix or name)
    return ConvergeEnv(
        env.bootstrap,
        env.redis_url,
        prefix,
        env.topics,
        env.dlq_topic,
        env.settings,
        decision_topic=decisions,
        audit_topic=audit,
    )


def produce_storm(env: FlowEnv, actions: int) -> list[dict]:
    """The benchmark's storm of ``actions`` actions on the action topic, a dimension per key."""
    messages = storm(actions)
    produce(env.bootstrap, env.topics["ACTION"], [orjson.dumps(m) for m in messages], by_dimension)
    return messages


def read_decisions(env: ConvergeEnv) -> dict[str, dict]:
    """Decision messages by id; a replayed duplicate must be identical."""
    found: dict[str, dict] = {}
    for raw in read_all(env.bootstrap, env.decision_topic):
        message = orjson.loads(raw)
        assert found.setdefault(message["id"], message) == message
    return found


def audit_lists(client: redis.Redis, prefix: str) -> dict[str, list[dict]]:
    lists = {}
    for key in client.scan_iter(match=f"{prefix}.fta_action.audit.*"):
        alert = key.decode().rsplit(".", 1)[1]
        lists[alert] = [orjson.loads(e) for e in reversed(client.lrange(key, 0, -1))]
    return lists


@pytest.mark.parametrize(("lock", "workers"), [("0", "2"), ("1", "1")])
def test_a_storm_gives_the_engine_s_decisions_audit_and_index(
    action_env, kafka_topics, redis_server, lock, workers
):
    """With ``ALARMFLOW_CONVERGE_LOCK=1`` one deployment never finds its own lock busy; with
    two workers each writes the outputs of the dimensions it owns."""
    messages = produce_storm(action_env, 1000)
    produce(action_env.bootstrap, action_env.topics["ACTION"], list(BAD))
    env = outputs(action_env, kafka_topics, "storm")

    command = bytewax_command("flows.converge", "-w", workers)
    run(command, env.environ(ALARMFLOW_CONVERGE_LOCK=lock))

    reference = run_engine([parse_action(m) for m in messages])
    got = read_decisions(env)
    assert got == {d.id: orjson.loads(orjson.dumps(decision_message(d))) for d in reference}
    assert Counter(m["decision"] for m in got.values()) == expected_counts(messages)
    audit = [orjson.loads(m) for m in read_all(env.bootstrap, env.audit_topic)]
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
    notices = list(service.scan_iter(match=f"{env.prefix}.fta_action.notice.abnormal.mail.*"))
    assert len(notices) == 40, "per notice dimension, its opener is executed (collect)"

    dlq = [orjson.loads(m) for m in read_all(env.bootstrap, env.dlq_topic)]
    assert Counter(m["reason"] for m in dlq) == Counter(BAD.values())


def test_decides_and_writes_what_main_before_the_performance_work_does(
    action_env, kafka_topics, redis_server, baseline_checkout
):
    """The storm and the bad messages through today's flow and through main as it was before
    the performance work (:data:`~tests.flows.flowrun.BASELINE`): the same decision, audit
    and dead-letter messages, byte for byte, and the same Redis content."""
    produce_storm(action_env, 5000)
    produce(action_env.bootstrap, action_env.topics["ACTION"], list(BAD))
    clients = {db: redis.Redis.from_url(redis_server.url(db)) for db in (9, 10)}
    runs = {}
    for name, checkout in (("today", REPO), ("before", baseline_checkout)):
        env = outputs(action_env, kafka_topics, name)
        [dlq] = kafka_topics(f"{name}-dlq", partitions=1)
        env = replace(env, dlq_topic=dlq)
        run(bytewax_command("flows.converge"), env.environ(), checkout)
        topics = (env.decision_topic, env.audit_topic, env.dlq_topic)
        runs[name] = (
            [sorted(read_all(env.bootstrap, topic)) for topic in topics],
            snapshot_dbs(clients, env.prefix),
        )
    (messages, redis_content), (messages_before, redis_before) = runs["today"], runs["before"]
    decisions, audit, dlq = messages_before
    assert len(decisions) == len(audit) > 5000 and len(dlq) == len(BAD)
    assert messages == messages_before
    assert len(redis_before) > 10_000
    assert redis_content == redis_before


def test_repeated_sigkills_and_resumes_give_the_same_decisions_once(
    action_env, kafka_topics, redis_server, tmp_path
):
    """A crash soak: killed with SIGKILL after each of several snapshots, resumed from
    recovery each time, then run to the end: the same decisions (deduplicated by id) and Redis."""
    produce_storm(action_env, 20000)
    clients = {db: redis.Redis.from_url(redis_server.url(db)) for db in (9, 10)}
    reference = outputs(action_env, kafka_topics, "ref")
    run(bytewax_command("flows.converge"), reference.environ())
    expected = snapshot_dbs(clients, reference.prefix)

    crashed = outputs(action_env, kafka_topics, "crash")
    crash_soak("flows.converge", crashed, tmp_path, kills=4)

    assert read_decisions(crashed) == read_decisions(reference)
    assert snapshot_dbs(clients, crashed.prefix) == expected


def test_a_recovery_store_of_main_before_the_performance_work_resumes_today(
    action_env, kafka_topics, redis_server, tmp_path, baseline_checkout
):
    """An upgrade: main before the performance work (:data:`~tests.flows.flowrun.BASELINE`)
    killed with SIGKILL after some snapshots, today's flow resumed from its recovery store:
    the decisions and Redis of an uninterrupted run, so the converge and business state came
    through (lost state would decide the resumed dimensions' actions afresh)."""
    produce_storm(action_env, 20000)
    clients = {db: redis.Redis.from_url(redis_server.url(db)) for db in (9, 10)}
    reference = outputs(action_env, kafka_topics, "ref")
    run(bytewax_command("flows.converge"), reference.environ())

    upgraded = outputs(action_env, kafka_topics, "upgraded")
    recovery = tmp_path / "recovery"
    init_recovery(recovery, 1)
    command = bytewax_command("flows.converge", "-r", str(recovery), "-s", "1", "-b", "0")
    log = tmp_path / "before.log"
    before = start(command, upgraded.environ(), log, baseline_checkout)
    wait_until(
        lambda: before.poll() is not None or recovery_commit(recovery) >= 2,
        "two snapshots of main before the performance work",
    )
    assert before.poll() is None, "it ended before its second snapshot: " + log.read_text()[-2000:]
    os.kill(before.pid, signal.SIGKILL)
    before.wait()
    run(command, upgraded.environ())

    assert read_decisions(upgraded) == read_decisions(reference)
    assert snapshot_dbs(clients, upgraded.prefix) == snapshot_dbs(clients, reference.prefix)


def test_two_deployments_on_the_ring_decide_exactly_what_one_does(
    action_env, kafka_topics, redis_server
):
    """Sharded by the action's business: deployments ``a`` and ``b`` together write the same
    decisions and Redis content as one deployment, each decision once."""
    produce_storm(action_env, 1000)
    clients = {db: redis.Redis.from_url(redis_server.url(db)) for db in (9, 10)}
    one = outputs(action_env, kafka_topics, "one")
    run(bytewax_command("flows.converge"), one.environ())
    halves = []
    for node in ("a", "b"):
        half = outputs(action_env, kafka_topics, f"ring{node}", prefix="ring")
        ring = {"ALARMFLOW_HASH_RING_NODES": "a,b", "ALARMFLOW_HASH_RING_NODE": node}
        run(bytewax_command("flows.converge"), half.environ(**ring))
        halves.append(read_decisions(half))
    assert all(halves), "both deployments own some businesses"
    assert not set(halves[0]) & set(halves[1])
    assert {**halves[0], **halves[1]} == read_decisions(one)
    ring_prefix = action_env.prefix + "ring"
    assert snapshot_dbs(clients, ring_prefix) == snapshot_dbs(clients, one.prefix)


def test_live_a_lock_held_by_another_deployment_makes_actions_wait_then_converge(
    action_env, kafka_topics, redis_server, tmp_path
):
    """Tailing with ``ALARMFLOW_CONVERGE_LOCK=1`` while another deployment holds the dimension's
    lock: the actions are re-queued every 3 s with no status change, so their 1 s timeout does
    not skip them, and once the other deployment lets go they converge as the engine decides
    without contention (``processor.get_dimension_lock``, ``is_sleep_timeout``). The lock is
    let go once both actions were refused it (a refusal is an INCR taken back by a DECR: two
    keyspace events), not after a fixed time: a lock expiring between the two first attempts
    would hand it to the second action first, as it would in bkmonitor."""
    now = time.time()
    config = {"is_enabled": True, "converge_func": "skip_when_exceed", "timedelta": 60, "count": 1}
    messages = [
        {"id": n, "create_time": now, "timeout": 1, "converge_config": config, "bk_biz_id": 2}
        for n in (1, 2)
    ]
    actions = [parse_action(m) for m in messages]
    env = outputs(action_env, kafka_topics, "busy")
    service = redis.Redis.from_url(redis_server.url(10))
    lock = f"{env.prefix}.fta_action.converge.{plan(actions[0]).dimension}.process.lock"
    service.set(lock, 99)
    service.config_set("notify-keyspace-events", "K$")
    events = service.pubsub(ignore_subscribe_messages=True)
    events.subscribe(f"__keyspace@10__:{lock}")
    refusals = []

    def both_refused() -> bool:
        while (event := events.get_message()) is not None:
            if event["data"] == b"incrby":  # INCR and DECR both notify "incrby"
                refusals.append(event)
        return len(refusals) >= 4

    produce(env.bootstrap, env.topics["ACTION"], [orjson.dumps(m) for m in messages], by_dimension)
    proc = start(
        bytewax_command("flows.converge"),
        env.environ(ALARMFLOW_TAIL="1", ALARMFLOW_CONVERGE_LOCK="1"),
        tmp_path / "tail.log",
    )
    try:
        wait_until(both_refused, "both actions refused the lock")
        assert read_decisions(env) == {}
        service.delete(lock)
        deadline = time.monotonic() + 60
        while len(got := read_decisions(env)) < 2 and time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "tail.log").read_text()[-2000:]
            time.sleep(0.2)
    finally:
        proc.kill()
        proc.wait()
        events.close()
        service.config_set("notify-keyspace-events", "")
    expected = {d.id: (d.decision, d.converge_id != "") for d in run_engine(actions)}
    assert {i: (m["decision"], m["converge_id"] != "") for i, m in got.items()} == expected
    assert min(m["time"] for m in got.values()) >= now + 3, "decided after a lock retry"
    assert max(m["time"] for m in got.values()) <= time.time()


def test_a_decision_too_large_to_produce_is_dead_lettered_and_the_flow_goes_on(
    action_env, kafka_topics
):
    """An action of 103 alerts with ids of 10,000 characters (1.03 MB, within
    ``ALARMFLOW_MAX_MESSAGE_BYTES``) and no converge config is executed; its decision and audit
    messages would be larger than the producer's ``message.max.bytes`` (1,000,000), which it
    refuses, and would refuse again after every restart."""
    base = {"status": "received", "signal": "abnormal", "strategy_id": 1, "bk_biz_id": 2}
    base |= {"plugin_type": "webhook", "create_time": int(NOW) - 5}
    big = {**base, "id": 1, "alerts": [{"id": f"{n:05d}" + "a" * 9995} for n in range(103)]}
    small = {**base, "id": 2, "alerts": [{"id": "small"}]}
    messages = [orjson.dumps(big), orjson.dumps(small)]
    assert 1_000_000 < len(messages[0]) < 1 << 20
    produce(action_env.bootstrap, action_env.topics["ACTION"], messages, by_dimension)
    env = outputs(action_env, kafka_topics, "big")

    run(bytewax_command("flows.converge"), env.environ())

    too_large, fits = run_engine([parse_action(big), parse_action(small)])
    assert list(read_decisions(env)) == [fits.id]
    [dead] = [orjson.loads(m) for m in read_all(env.bootstrap, env.dlq_topic)]
    assert dead["reason"] == "too_large"
    assert dead["raw"] == too_large.id
