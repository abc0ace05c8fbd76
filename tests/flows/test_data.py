"""The data flow on the real Kafka broker and Redis: groups, dedup, expiry, threshold merge,
checkpoints, and a SIGKILL-and-resume run equal to an uninterrupted one."""

from __future__ import annotations

import time
from collections import Counter

import orjson
import pytest
import redis

from alarmflow.config import BUNDLED_STRATEGIES
from alarmflow.kafka_tools import produce, read_all
from operators.md5 import count_md5
from operators.strategy import load_strategy_file
from operators.strategy_group import strategy_groups
from tests.flows.flowrun import FlowEnv, bytewax_command, kill_midway_and_resume, run, snapshot_dbs

pytestmark = pytest.mark.integration

T = 1_800_000_000
GROUPS = {
    g.query["result_table_id"]: g.key
    for g in strategy_groups(load_strategy_file(BUNDLED_STRATEGIES)).values()
}
CPU, MEM = "system.cpu_summary", "system.mem"


def point(rt: str, ip: str, metrics: dict, at: int = T, biz: int = 2) -> bytes:
    dims = {"bk_biz_id": biz, "bk_target_ip": ip, "bk_target_cloud_id": "0"}
    return orjson.dumps({"result_table_id": rt, "time": at, "dimensions": dims, "metrics": metrics})


def by_table(message: bytes) -> bytes:
    return orjson.loads(message)["result_table_id"].encode()


MESSAGES = [
    point(CPU, "10.0.0.7", {"usage": 95.0}),  # levels 1 and 2
    point(CPU, "10.0.0.8", {"usage": 50.0}),  # normal
    point(CPU, "10.0.0.7", {"usage": 95.0}),  # duplicate
    point(MEM, "10.0.0.7", {"pct_used": 40.0}),
    point(MEM, "10.0.0.7", {"pct_used": 41.0}, at=T + 60),
    point(MEM, "10.0.0.8", {"pct_used": 41.0}, at=T - 3600),  # expired behind T + 60
    point(MEM, "10.0.0.8", {"pct_used": 41.0}, biz=0),  # no business
    point(MEM, "10.0.0.40", {"pct_used": 41.0}),  # monitoring disabled
    point("system.disk", "10.0.0.8", {"in_use": 1.0}),  # no strategy group
]
BAD = {
    b"{": "not_json",
    orjson.dumps({"time": T, "dimensions": {}, "metrics": {}}): "missing_field",
    orjson.dumps({"result_table_id": MEM, "time": "x", "dimensions": {}, "metrics": {}}): (
        "wrong_type"
    ),
}


@pytest.fixture
def data_env(make_flow_env) -> FlowEnv:
    return make_flow_env(2, "DATA")


def md5_of(ip: str) -> str:
    return count_md5({"bk_target_ip": ip, "bk_target_cloud_id": "0"})


@pytest.mark.parametrize("workers", ["1", "2"])
def test_points_become_anomalies_or_data_lists_per_group(data_env, redis_server, workers):
    env = data_env
    produce(env.bootstrap, env.topics["DATA"], MESSAGES, by_table)
    produce(env.bootstrap, env.topics["DATA"], list(BAD))

    done = run(bytewax_command("flows.data", "-w", workers), env.environ())

    if workers == "1":  # with more workers each logs its own counts
        for reason in ("duplicate", "expired", "no_business", "host_disabled", "no_strategy"):
            assert f"dropped[{reason}]=1" in done.stderr
    queue = redis.Redis.from_url(env.redis_url)
    service = redis.Redis.from_url(redis_server.url(10))
    p = env.prefix
    anomalies = [orjson.loads(a) for a in queue.lrange(f"{p}.detect.anomaly.list.402.4020", 0, -1)]
    assert len(anomalies) == 1
    anomaly = anomalies[0]
    assert anomaly["data"]["record_id"] == f"{md5_of('10.0.0.7')}.{T}"
    assert sorted(anomaly["anomaly"]) == ["1", "2"]
    assert anomaly["anomaly"]["1"]["anomaly_id"] == f"{md5_of('10.0.0.7')}.{T}.402.4020.1"
    assert anomaly["strategy_snapshot_key"] == f"{p}.cache.strategy.snapshot.402.0"
    assert orjson.loads(service.get(f"{p}.cache.strategy.snapshot.402.0"))["id"] == 402
    assert queue.lrange(f"{p}.detect.anomaly.signal", 0, -1) == [b"402.4020"]
    hot, cool = md5_of("10.0.0.7"), md5_of("10.0.0.8")
    result = f"{p}.detect.result.402.4020"
    assert service.zrange(f"{result}.{hot}.1", 0, -1) == [f"{T}|ANOMALY".encode()]
    assert service.zrange(f"{result}.{cool}.2", 0, -1) == [f"{T}|50.0".encode()]
    last = service.hgetall(f"{p}.detect.last.checkpoint.402.4020")
    assert last[f"detect.result.{cool}.1".encode()] == str(T).encode()
    assert last[b"detect.result.__ALL__.2"] == str(T).encode()
    assert not queue.exists(f"{p}.access.data.402.4020")

    data = [orjson.loads(r) for r in reversed(queue.lrange(f"{p}.access.data.404.4040", 0, -1))]
    assert [(d["time"], d["value"], d["values"]["pct_used"]) for d in data] == [
        (T, 40.0, 40.0),
        (T + 60, 41.0, 41.0),
    ]
    # 403 has priority 1 in 404's priority group: inhibited on the series 404 sees.
    assert not queue.exists(f"{p}.access.data.403.4030")
    assert service.hgetall(f"{p}.access.data.priority.mem_pct_used") == {
        hot.encode(): f"2:{T + 60}".encode()
    }
    assert queue.lrange(f"{p}.access.data.signal", 0, -1) == [b"404"]

    assert service.get(f"{p}.checkpoint.strategy_group_{GROUPS[MEM]}") == str(T + 60).encode()
    assert service.get(f"{p}.checkpoint.strategy_group_{GROUPS[CPU]}") == str(T).encode()
    assert service.ttl(f"{p}.checkpoint.strategy_group_{GROUPS[MEM]}") > 3500
    assert int(service.get(f"{p}.access.run.strategy_group_{GROUPS[MEM]}")) >= time.time() - 300
    dedup = f"{p}.access.data.duplicate.strategy_group_{GROUPS[CPU]}.{T}"
    assert service.smembers(dedup) == {f"{hot}.{T}".encode(), f"{cool}.{T}".encode()}
    assert 0 < service.ttl(dedup) <= 600
    dlq = [orjson.loads(m) for m in read_all(env.bootstrap, env.dlq_topic)]
    assert Counter(m["reason"] for m in dlq) == Counter(BAD.values())


def storm(steps: int) -> list[bytes]:
    """Per minute: every host's memory and CPU (below every CPU threshold)."""
    return [
        point(rt, f"10.0.0.{host}", {metric: float(host + step % 7)}, at=T + 60 * step)
        for step in range(steps)
        for host in range(1, 31)
        for rt, metric in ((MEM, "pct_used"), (CPU, "usage"))
    ]


def test_sigkill_and_resume_from_recovery_equals_an_uninterrupted_run(
    data_env, redis_server, tmp_path
):
    env = data_env
    produce(env.bootstrap, env.topics["DATA"], storm(250), by_table)
    queue = redis.Redis.from_url(env.redis_url)
    service = redis.Redis.from_url(redis_server.url(10))
    reference = FlowEnv(env.bootstrap, env.redis_url, env.prefix + "ref", env.topics, env.dlq_topic)
    run(bytewax_command("flows.data"), reference.environ())
    clients = {"queue": queue, "service": service}
    expected = snapshot_dbs(clients, reference.prefix, ".access.run.")
    assert len(expected) > 100

    crashed = FlowEnv(env.bootstrap, env.redis_url, env.prefix + "crash", env.topics, env.dlq_topic)
    progress = f"{crashed.prefix}.access.data.404.4040"
    kill_midway_and_resume("flows.data", crashed, tmp_path, lambda: queue.llen(progress), 250 * 30)

    assert snapshot_dbs(clients, crashed.prefix, ".access.run.") == expected
