"""The real-time data flow on the real Kafka broker and Redis."""

from __future__ import annotations

import time
from collections import Counter

import orjson
import pytest
import redis

from alarmflow.kafka_tools import produce, read_all
from operators.md5 import count_md5
from tests.flows.flowrun import FlowEnv, bytewax_command, kill_midway_and_resume, run, snapshot_dbs

pytestmark = pytest.mark.integration

NOW = int(time.time()) // 60 * 60
CPU = "system.cpu_summary"


def point(ip: str, usage: float, biz: int = 2, at: int = NOW, rt: str = CPU, **dims) -> bytes:
    dimensions = {"bk_biz_id": biz, "bk_target_ip": ip, "bk_target_cloud_id": "0", **dims}
    return orjson.dumps(
        {"result_table_id": rt, "time": at, "dimensions": dimensions, "metrics": {"usage": usage}}
    )


MESSAGES = [
    point("10.0.0.7", 17.1),
    point("10.0.0.7", 17.1),  # delivered twice: pushed once
    point("10.0.0.45", 55.5, biz=3, device_name="cpu-total"),
    point("10.0.0.45", 60.0, biz=3, device_name="cpu0"),  # out of the agg_condition
    point("10.0.0.8", 1.0, biz=0),  # no business
    point("10.0.0.40", 99.0),  # faulty host: monitoring disabled
    point("10.9.9.9", 99.0),  # not in the CMDB
    point("10.0.0.8", 99.0, at=NOW - 3600),  # expired
    point("10.0.0.8", 99.0, rt="system.disk"),  # no real-time strategy
]
BAD = {
    b"not json at all": "not_json",
    orjson.dumps({"time": NOW, "dimensions": {}, "metrics": {}}): "missing_field",
    orjson.dumps({"result_table_id": CPU, "time": NOW, "dimensions": [], "metrics": {}}): (
        "wrong_type"
    ),
}


@pytest.fixture
def rt_env(make_flow_env) -> FlowEnv:
    return make_flow_env(2, "REAL_TIME_DATA")


def records(client: redis.Redis, key: str) -> list[dict]:
    out = []
    for raw in reversed(client.lrange(key, 0, -1)):
        record = orjson.loads(raw)
        assert isinstance(record.pop("access_time"), float)
        out.append(record)
    return out


def test_real_time_points_become_data_records_and_signals(rt_env, redis_server):
    env = rt_env
    produce(env.bootstrap, env.topics["REAL_TIME_DATA"], MESSAGES + list(BAD))

    done = run(bytewax_command("flows.real_time_data"), env.environ())

    for reason in ("duplicate", "no_business", "host_disabled", "unknown_host", "expired"):
        assert f"dropped[{reason}]=1" in done.stderr
    assert "dropped[out_of_range]=1" in done.stderr and "dropped[no_strategy]=1" in done.stderr
    queue = redis.Redis.from_url(env.redis_url)
    service = redis.Redis.from_url(redis_server.url(10))
    p = env.prefix
    md5 = count_md5({"bk_target_ip": "10.0.0.7", "bk_target_cloud_id": "0"})
    assert records(queue, f"{p}.access.data.401.4010") == [
        {
            "time": NOW,
            "value": 17.1,
            "values": {"usage": 17.1, "_result_": 0, "time": NOW},
            "dimensions": {
                "bk_target_ip": "10.0.0.7",
                "bk_target_cloud_id": "0",
                "bk_topo_node": ["biz|2", "module|100", "set|1"],
                "bk_host_id": 7,
            },
            "record_id": f"{md5}.{NOW}",
            "dimension_fields": ["bk_target_ip", "bk_target_cloud_id"],
        }
    ]
    assert queue.ttl(f"{p}.access.data.401.4010") > 1700
    second = records(queue, f"{p}.access.data.405.4050")
    assert [(r["value"], r["dimensions"]["device_name"]) for r in second] == [(55.5, "cpu-total")]
    assert sorted(queue.lrange(f"{p}.access.data.signal", 0, -1)) == [b"401", b"405"]
    dedup = service.keys(f"{p}.access.data.duplicate.strategy_group_*.{NOW}")
    assert len(dedup) == 2
    assert {m for k in dedup for m in service.smembers(k)} >= {f"{md5}.{NOW}".encode()}
    assert all(0 < service.ttl(k) <= 600 for k in dedup)
    dlq = [orjson.loads(m) for m in read_all(env.bootstrap, env.dlq_topic)]
    assert Counter(m["reason"] for m in dlq) == Counter(BAD.values())
    assert {m["flow"] for m in dlq} == {"real_time_data"}


def storm(steps: int) -> list[bytes]:
    """Every minute-ish of the last 20 minutes, hosts 1-38: new points for strategy 401."""
    return [
        point(f"10.0.0.{host}", float(host + step), at=NOW - 1200 + step)
        for step in range(steps)
        for host in range(1, 39)
    ]


def test_sigkill_and_resume_from_recovery_equals_an_uninterrupted_run(
    rt_env, redis_server, tmp_path
):
    env = rt_env
    produce(env.bootstrap, env.topics["REAL_TIME_DATA"], storm(600))
    queue = redis.Redis.from_url(env.redis_url)
    service = redis.Redis.from_url(redis_server.url(10))
    reference = FlowEnv(env.bootstrap, env.redis_url, env.prefix + "ref", env.topics, env.dlq_topic)
    run(bytewax_command("flows.real_time_data"), reference.environ())
    clients = {"queue": queue, "service": service}
    expected = snapshot_dbs(clients, reference.prefix)
    assert expected[("queue", ".access.data.401.4010")].size == 600 * 38

    crashed = FlowEnv(env.bootstrap, env.redis_url, env.prefix + "crash", env.topics, env.dlq_topic)
    progress = f"{crashed.prefix}.access.data.401.4010"
    kill_midway_and_resume(
        "flows.real_time_data", crashed, tmp_path, lambda: queue.llen(progress), 600 * 38
    )

    assert snapshot_dbs(clients, crashed.prefix) == expected
