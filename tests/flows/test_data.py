"""The data flow on the real Kafka broker and Redis: points aggregated into buckets, dedup
sets marked before the filters, expiry, late points, priority inhibition, threshold merge,
checkpoints, the DLQ, and a crash soak equal to an uninterrupted run.

Expected values are derived by hand from bkmonitor's ``access/data/processor.py``
(``AccessDataProcess``: TSDB rows per bucket, ``filter_duplicates``, ``push``),
``access/data/filters.py``, ``access/priority.py`` and ``core/cache/key.py`` (key names).
"""

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
from tests.flows.flowrun import FlowEnv, bytewax_command, crash_soak, run, snapshot_dbs

pytestmark = pytest.mark.integration

T = int(time.time()) // 60 * 60 - 1200
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
    point(CPU, "10.0.0.7", {"usage": 95.0}),  # sent twice: one value per series and time
    point(MEM, "10.0.0.8", {"pct_used": 41.0}, at=T - 3600),  # expired once its bucket closes
    point(MEM, "10.0.0.7", {"pct_used": 40.0}, at=T + 5),  # one bucket, two points: 41.0
    point(MEM, "10.0.0.7", {"pct_used": "42"}, at=T + 50),
    point(MEM, "10.0.0.40", {"pct_used": 41.0}),  # monitoring disabled: marked, not pushed
    point(MEM, "10.0.0.7", {"pct_used": 41.0}, at=T + 60),
    point(MEM, "10.0.0.8", {"pct_used": 7.5}, at=T + 75),  # watermark T + 75: bucket T closes
    point(MEM, "10.0.0.7", {"pct_used": 99.0}, at=T + 2),  # bucket T is closed: late
    point(MEM, "10.0.0.8", {"pct_used": 41.0}, biz=0),  # no business
    point("system.disk", "10.0.0.8", {"in_use": 1.0}),  # no strategy group
]
BAD = {
    b"{": "not_json",
    orjson.dumps({"time": T, "dimensions": {}, "metrics": {}}): "missing_field",
    orjson.dumps({"result_table_id": MEM, "time": "x", "dimensions": {}, "metrics": {}}): (
        "wrong_type"
    ),
    point(MEM, "10.0.0.7", {"pct_used": [1, 2]}, at=T + 61): "wrong_type",
    point(MEM, "10.0.0.7", {"pct_used": 1.0}, at=T * 1000): "millisecond_time",
    point(MEM, "10.0.0.7", {"pct_used": 1.0}, at=T + 86_400): "future_time",
    # 2**65 has 20 digits: JSON decodes it as a float, a time far in the future.
    point(MEM, "10.0.0.7", {"pct_used": 1.0}).replace(str(T).encode(), str(2**65).encode()): (
        "future_time"
    ),
}


@pytest.fixture
def data_env(make_flow_env) -> FlowEnv:
    return make_flow_env(2, "DATA")


def md5_of(ip: str) -> str:
    return count_md5({"bk_target_ip": ip, "bk_target_cloud_id": "0"})


@pytest.mark.parametrize("workers", ["1", "2"])
def test_points_become_bucket_records_anomalies_or_data_lists(data_env, redis_server, workers):
    env = data_env
    produce(env.bootstrap, env.topics["DATA"], MESSAGES, by_table)
    produce(env.bootstrap, env.topics["DATA"], list(BAD), lambda _m: b"bad")

    done = run(bytewax_command("flows.data", "-w", workers), env.environ())

    if workers == "1":  # with more workers each logs its own counts
        for reason in ("expired", "late", "no_business", "host_disabled", "no_strategy"):
            assert f"dropped[{reason}]=1" in done.stderr
    queue = redis.Redis.from_url(env.redis_url)
    service = redis.Redis.from_url(redis_server.url(10))
    p = env.prefix
    hot, cool, off = md5_of("10.0.0.7"), md5_of("10.0.0.8"), md5_of("10.0.0.40")

    anomalies = [orjson.loads(a) for a in queue.lrange(f"{p}.detect.anomaly.list.402.4020", 0, -1)]
    assert [(a["data"]["record_id"], a["data"]["value"]) for a in anomalies] == [
        (f"{hot}.{T}", 95.0)
    ]
    assert sorted(anomalies[0]["anomaly"]) == ["1", "2"]
    assert anomalies[0]["anomaly"]["1"]["anomaly_id"] == f"{hot}.{T}.402.4020.1"
    assert anomalies[0]["strategy_snapshot_key"] == f"{p}.cache.strategy.snapshot.402.0"
    assert queue.lrange(f"{p}.detect.anomaly.signal", 0, -1) == [b"402.4020"]
    result = f"{p}.detect.result.402.4020"
    assert service.zrange(f"{result}.{hot}.1", 0, -1) == [f"{T}|ANOMALY".encode()]
    assert service.zrange(f"{result}.{cool}.2", 0, -1) == [f"{T}|50.0".encode()]

    data = [orjson.loads(r) for r in reversed(queue.lrange(f"{p}.access.data.404.4040", 0, -1))]
    # Bucket T (closed by the watermark), then bucket T + 60 (closed at end of input), its
    # series in md5 order. AVG(40.0, 42) = 41.0.
    last = sorted([(hot, 41.0), (cool, 7.5)])
    assert [(d["record_id"], d["value"]) for d in data] == [
        (f"{hot}.{T}", 41.0),
        *((f"{md5}.{T + 60}", value) for md5, value in last),
    ]
    assert data[0]["values"] == {"pct_used": 41.0, "_result_": 41.0, "time": T}
    # 403 (priority 1) shares 404's priority group: inhibited on every series 404 claims.
    assert not queue.exists(f"{p}.access.data.403.4030")
    assert service.hgetall(f"{p}.access.data.priority.mem_pct_used") == {
        hot.encode(): f"2:{T + 60}".encode(),
        cool.encode(): f"2:{T + 60}".encode(),
    }
    assert queue.lrange(f"{p}.access.data.signal", 0, -1) == [b"404"]

    assert service.get(f"{p}.checkpoint.strategy_group_{GROUPS[MEM]}") == str(T + 60).encode()
    assert service.get(f"{p}.checkpoint.strategy_group_{GROUPS[CPU]}") == str(T).encode()
    assert int(service.get(f"{p}.access.run.strategy_group_{GROUPS[MEM]}")) >= time.time() - 300
    # Every pulled record joins the dedup set before the filters: the expired one and the
    # one of the host whose monitoring is off too.
    dedup = f"{p}.access.data.duplicate.strategy_group_{GROUPS[MEM]}"
    assert service.smembers(f"{dedup}.{T - 3600}") == {f"{cool}.{T - 3600}".encode()}
    assert service.smembers(f"{dedup}.{T}") == {f"{hot}.{T}".encode(), f"{off}.{T}".encode()}
    assert 0 < service.ttl(f"{dedup}.{T}") <= 600
    cpu_dedup = f"{p}.access.data.duplicate.strategy_group_{GROUPS[CPU]}.{T}"
    assert service.smembers(cpu_dedup) == {f"{hot}.{T}".encode(), f"{cool}.{T}".encode()}

    dlq = [orjson.loads(m) for m in read_all(env.bootstrap, env.dlq_topic)]
    assert Counter(m["reason"] for m in dlq) == Counter(BAD.values())


def test_a_claim_older_than_ten_intervals_leaves_the_priority_hash(data_env, redis_server):
    """``PriorityChecker.sync_priority`` (``access/priority.py``) HDELs every claim for which
    ``float(timestamp) + interval * 10 < now``: 10.0.0.8's claim at T is 660 s old at
    10.0.0.7's point (interval 60), so that record's writes delete it from the hash, which
    keeps only 10.0.0.7's claim."""
    env = data_env
    points = [
        point(MEM, "10.0.0.8", {"pct_used": 41.0}, at=T),
        point(MEM, "10.0.0.7", {"pct_used": 41.0}, at=T + 660),
    ]
    produce(env.bootstrap, env.topics["DATA"], points, by_table)

    run(bytewax_command("flows.data"), env.environ())

    service = redis.Redis.from_url(redis_server.url(10))
    assert service.hgetall(f"{env.prefix}.access.data.priority.mem_pct_used") == {
        md5_of("10.0.0.7").encode(): f"2:{T + 660}".encode()
    }


def storm(steps: int, start: int) -> list[bytes]:
    """Per minute: every host's memory and CPU (below every CPU threshold), two points a
    bucket each."""
    return [
        point(rt, f"10.0.0.{host}", {metric: float(host + step % 7 + half)}, at=at)
        for step in range(steps)
        for half, at in ((0, start + 60 * step), (1, start + 60 * step + 30))
        for host in range(1, 31)
        for rt, metric in ((MEM, "pct_used"), (CPU, "usage"))
    ]


def test_crash_soak_equals_an_uninterrupted_run(data_env, redis_server, tmp_path):
    """Killed again and again, resumed from the recovery store (open buckets, watermarks and
    priority hashes in it) each time: Redis ends as after one uninterrupted run."""
    env = data_env
    steps = 150
    produce(env.bootstrap, env.topics["DATA"], storm(steps, T - 60 * steps), by_table)
    queue = redis.Redis.from_url(env.redis_url)
    service = redis.Redis.from_url(redis_server.url(10))
    reference = FlowEnv(env.bootstrap, env.redis_url, env.prefix + "ref", env.topics, env.dlq_topic)
    run(bytewax_command("flows.data"), reference.environ())
    clients = {"queue": queue, "service": service}
    expected = snapshot_dbs(clients, reference.prefix, ".access.run.")
    assert expected[("queue", ".access.data.404.4040")].size == steps * 30

    crashed = FlowEnv(env.bootstrap, env.redis_url, env.prefix + "crash", env.topics, env.dlq_topic)
    crash_soak("flows.data", crashed, tmp_path, kills=4)

    assert snapshot_dbs(clients, crashed.prefix, ".access.run.") == expected


def test_writes_what_main_before_the_performance_work_writes(
    data_env, redis_server, baseline_checkout
):
    """Today's flow and main before the performance work, on the same input (an hour of
    every host's memory and CPU, the cases above, the bad messages): the same Redis."""
    env = data_env
    produce(env.bootstrap, env.topics["DATA"], storm(60, T - 3600) + MESSAGES, by_table)
    produce(env.bootstrap, env.topics["DATA"], list(BAD), lambda _m: b"bad")
    clients = {
        "queue": redis.Redis.from_url(env.redis_url),
        "service": redis.Redis.from_url(redis_server.url(10)),
    }
    today = FlowEnv(env.bootstrap, env.redis_url, env.prefix + "now", env.topics, env.dlq_topic)
    run(bytewax_command("flows.data"), today.environ())
    before = FlowEnv(env.bootstrap, env.redis_url, env.prefix + "was", env.topics, env.dlq_topic)
    run(bytewax_command("flows.data"), before.environ(), baseline_checkout)

    expected = snapshot_dbs(clients, before.prefix, ".access.run.")
    assert expected[("queue", ".access.data.404.4040")].size > 60 * 30
    assert snapshot_dbs(clients, today.prefix, ".access.run.") == expected
