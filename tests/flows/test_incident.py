"""The incident flow on the real Kafka broker and Redis, run as ``python -m bytewax.run``."""

from __future__ import annotations

from collections import Counter

import orjson
import pytest
import redis

from alarmflow.kafka_tools import produce, read_all
from alarmflow.launch import init_recovery
from alarmflow.report import snapshot
from tests.flows.flowrun import FlowEnv, bytewax_command, crash_soak, run

pytestmark = pytest.mark.integration

T0 = 1_800_000_000


def sync(incident_id: int, sync_type: str, status: str, at: int, **extra) -> dict:
    info = {"bk_biz_id": 2, "status": status, "create_time": T0, "update_time": at}
    return {
        "incident_id": incident_id,
        "sync_type": sync_type,
        "incident_info": {**info, **extra.pop("info", {})},
        "fpp_snapshot_id": "fpp:None",
        "rca_time": at,
        "scope": {"bk_biz_ids": [2], "alerts": extra.pop("alerts", []), "events": []},
        **extra,
    }


def status_change(before: str, after: str) -> dict:
    return {"status": {"from": before, "to": after}}


def by_incident(message: bytes) -> bytes:
    return str(orjson.loads(message)["incident_id"]).encode()


CREATE_7001 = sync(
    7001, "create", "ABNORMAL", T0 + 10, alerts=["a1", "a2"], info={"level": "ERROR"}
)
MESSAGES = [
    CREATE_7001,
    # a status round trip: observe, reopen, recover
    sync(
        7001,
        "update",
        "abnormal",
        T0 + 60,
        update_attributes=status_change("abnormal", "recovering"),
    ),
    sync(
        7001,
        "update",
        "recovering",
        T0 + 70,
        update_attributes=status_change("recovering", "abnormal"),
    ),
    sync(
        7001,
        "update",
        "abnormal",
        T0 + 90,
        alerts=["a1", "a2", "a3"],
        update_attributes=status_change("abnormal", "recovered"),
    ),
    CREATE_7001,  # delivered twice: folded in once
    sync(7002, "create", "abnormal", T0 + 10, incident_stage="stage_exp", incident_actions=[{}]),
    # an update before any create: created from the message, its attributes not applied
    sync(
        7003,
        "update",
        "recovering",
        T0 + 30,
        update_attributes=status_change("abnormal", "recovered"),
    ),
    sync(7004, "create", "abnormal", T0 + 10, info={"level": "ERROR", "incident_name": "disk"}),
    # attribute-only update: incident_info says recovered, only the level changes
    sync(
        7004,
        "update",
        "recovered",
        T0 + 20,
        update_attributes={"level": {"from": "ERROR", "to": "WARN"}},
    ),
]
BAD = {
    b"not json at all": "not_json",
    orjson.dumps({"incident_id": 9, "sync_type": "create"}): "missing_field",
    orjson.dumps(sync(9, "delete", "abnormal", T0)): "wrong_type",
    orjson.dumps({**sync(9, "update", "abnormal", T0), "scope": None}): "wrong_type",
}


def document(client: redis.Redis, prefix: str, incident: int) -> dict | None:
    raw = client.get(f"{prefix}.incident.doc.{incident}")
    return None if raw is None else orjson.loads(raw)


def history(client: redis.Redis, prefix: str, incident: int) -> list[tuple[str, int]]:
    entries = client.lrange(f"{prefix}.incident.history.{incident}", 0, -1)
    return [(e["operation_type"], e["time"]) for e in map(orjson.loads, reversed(entries))]


@pytest.fixture
def incident_env(make_flow_env) -> FlowEnv:
    return make_flow_env(3, "INCIDENT")


def test_incidents_are_kept_as_documents_history_and_alert_links(incident_env):
    env = incident_env
    produce(env.bootstrap, env.topics["INCIDENT"], [orjson.dumps(m) for m in MESSAGES], by_incident)
    produce(env.bootstrap, env.topics["INCIDENT"], list(BAD))

    run(bytewax_command("flows.incident"), env.environ())

    client = redis.Redis.from_url(env.redis_url)
    p = env.prefix
    first = document(client, p, 7001)
    assert (first["status"], first["end_time"], first["alert_count"]) == ("recovered", T0 + 90, 3)
    assert (first["id"], first["level"], first["status_order"]) == (f"{T0}7001", "ERROR", 2)
    assert history(client, p, 7001) == [
        ("incident_create", T0),
        ("incident_observe", T0 + 60),
        ("incident_reopen", T0 + 70),
        ("incident_recover", T0 + 90),
    ]
    assert client.smembers(f"{p}.incident.alerts.7001") == {b"a1", b"a2", b"a3"}
    assert document(client, p, 7002) is None
    early = document(client, p, 7003)
    assert (early["status"], early["update_time"], early.get("end_time")) == (
        "recovering",
        T0 + 30,
        None,
    )
    assert history(client, p, 7003) == [("incident_create", T0)]
    level_only = document(client, p, 7004)
    assert (level_only["level"], level_only["status"], level_only["update_time"]) == (
        "WARN",
        "abnormal",
        T0 + 10,
    )
    assert level_only["incident_name"] == "disk"
    assert [kind for kind, _ in history(client, p, 7004)] == ["incident_create", "incident_update"]
    assert sorted(client.lrange(f"{p}.incident.signal", 0, -1)) == [b"7001", b"7003", b"7004"]
    dlq = [orjson.loads(m) for m in read_all(env.bootstrap, env.dlq_topic)]
    assert Counter(m["reason"] for m in dlq) == Counter(BAD.values())
    assert {m["flow"] for m in dlq} == {"incident"}


def storm(incidents: int) -> list[bytes]:
    """Per incident: create, two updates; interleaved across incidents."""
    messages = []
    for step, status in enumerate(("abnormal", "recovering", "recovered")):
        for incident in range(incidents):
            kind = "create" if step == 0 else "update"
            alerts = [f"a{incident}-{step}"]
            change = status_change("abnormal" if step == 1 else "recovering", status)
            message = sync(
                incident, kind, status, T0 + step, alerts=alerts, update_attributes=change
            )
            messages.append(orjson.dumps(message))
    return messages


def reference_run(env: FlowEnv, client: redis.Redis) -> dict:
    """8,000 incidents' storm run once without interruption: Redis without the prefix."""
    produce(env.bootstrap, env.topics["INCIDENT"], storm(8000), by_incident)
    reference = FlowEnv(env.bootstrap, env.redis_url, env.prefix + "ref", env.topics, env.dlq_topic)
    run(bytewax_command("flows.incident"), reference.environ())
    return unprefixed(client, reference.prefix)


def unprefixed(client: redis.Redis, prefix: str) -> dict:
    return {k[len(prefix) :]: v for k, v in snapshot(client, prefix).items()}


def test_repeated_sigkills_each_resumed_equal_an_uninterrupted_run(incident_env, tmp_path):
    env = incident_env
    client = redis.Redis.from_url(env.redis_url)
    expected = reference_run(env, client)

    soaked = FlowEnv(env.bootstrap, env.redis_url, env.prefix + "soak", env.topics, env.dlq_topic)
    crash_soak("flows.incident", soaked, tmp_path, kills=4)

    assert unprefixed(client, soaked.prefix) == expected


def test_a_store_of_main_before_the_performance_work_resumes_today(
    incident_env, kafka_topics, tmp_path, baseline_checkout
):
    """An upgrade: main before the performance work (:data:`~tests.flows.flowrun.BASELINE`,
    its incidents in ``op.stateful_map``'s state) takes the creates; today's flow, resumed from
    its recovery store, the updates: the Redis of one uninterrupted run, so the documents came
    through (lost, an update would build its document anew)."""
    env = incident_env
    client = redis.Redis.from_url(env.redis_url)
    messages = storm(30)
    creates, updates = messages[:30], messages[30:]
    produce(env.bootstrap, env.topics["INCIDENT"], messages, by_incident)
    reference = FlowEnv(env.bootstrap, env.redis_url, env.prefix + "ref", env.topics, env.dlq_topic)
    run(bytewax_command("flows.incident"), reference.environ())

    [topic] = kafka_topics("upgrade")
    upgraded = FlowEnv(
        env.bootstrap, env.redis_url, env.prefix + "up", {"INCIDENT": topic}, env.dlq_topic
    )
    recovery = tmp_path / "recovery"
    init_recovery(recovery, 1)
    command = bytewax_command("flows.incident", "-r", str(recovery), "-s", "1", "-b", "0")
    produce(env.bootstrap, topic, creates, by_incident)
    run(command, upgraded.environ(), baseline_checkout)
    produce(env.bootstrap, topic, updates, by_incident)
    run(command, upgraded.environ())

    assert unprefixed(client, upgraded.prefix) == unprefixed(client, reference.prefix)
