"""The event flow on the real Kafka broker and Redis, run as ``python -m bytewax.run``."""

from __future__ import annotations

import time
from collections import Counter

import orjson
import pytest
import redis

from alarmflow.config import BUNDLED_STRATEGIES
from alarmflow.event_samples import by_host, sample_events
from alarmflow.kafka_tools import produce, read_all
from operators.event_records import format_time
from operators.hashring import HashRing
from operators.md5 import count_md5
from operators.strategy import load_strategy_file
from tests.flows.flowrun import (
    FlowEnv,
    bytewax_command,
    crash_soak,
    one_partition,
    run,
    snapshot_dbs,
)

pytestmark = pytest.mark.integration


def gse(ip: str, at: int, kind: int, **extra) -> dict:
    when = format_time(at)
    return {
        "server": ip,
        "utctime2": when,
        "value": [{"extra": {"type": kind, "host": ip, **extra}}],
    }


def custom(ip: str, at: int, text: str) -> dict:
    return {"_server_": ip, "_cloudid_": 0, "_utctime_": format_time(at), "_value_": [text]}


def process(ip: str, at: int, event_name: str) -> dict:
    dimension = {"bk_target_ip": ip, "bk_target_cloud_id": "0", "process_name": "nginx"}
    dimension.update(process_index="web:nginx", process_group_id="web")
    entry = {"dimension": dimension, "event_name": event_name, "timestamp": at * 1000}
    return {"data_id": 1100008, "data": [entry]}


BAD = {
    b"not json at all": "not_json",
    orjson.dumps({"hello": 1}): "missing_field",
    orjson.dumps(gse("10.0.0.1", 1714550400, 42)): "wrong_type",
}


@pytest.fixture
def event_env(make_flow_env) -> FlowEnv:
    return make_flow_env(3, "EVENT")


def test_events_become_anomalies_check_results_checkpoints_and_signals(event_env, service_client):
    env = event_env
    now = int(time.time()) - 60
    disk = {"free": 3, "file_system": "/dev/vdb1", "fstype": "ext4"}
    messages = [
        gse("10.0.0.1", now, 6, disk="/data", **disk),  # strategies 303 and 304 (set 1)
        gse("10.0.0.2", now, 6, disk="/", **disk),  # 303; 304 is out of range
        custom("10.0.0.41", now, "nginx down"),  # 313 (business 3)
        custom("10.9.9.9", now, "who am I"),  # unknown host
        custom("10.0.0.3", now - 3600, "too old"),  # expired
        custom("10.0.0.40", now, "faulty host"),  # monitoring disabled
        gse("10.0.0.1", now, 0),  # ignored type
        process("10.0.0.5", now, "process_stop"),  # 309's condition wants "restart"
        process("10.0.0.6", now, "process_restart_success"),  # 309
        gse("10.0.0.3", now, 7, corefile="/data/core.1", executable="nginx", signal="SIGSEGV"),
        gse("10.0.0.4", now, 9, process="java", message="total-vm:1kB", total=1),  # 307
        gse("10.0.0.4", now, 9, process="java", message="total-vm:2kB", total=1),  # another series
    ]
    produce(env.bootstrap, env.topics["EVENT"], [orjson.dumps(m) for m in messages])
    produce(env.bootstrap, env.topics["EVENT"], list(BAD))

    run(bytewax_command("flows.event"), env.environ())

    queue = redis.Redis.from_url(env.redis_url)
    p = env.prefix

    def anomalies(sid: int) -> list[dict]:
        return [
            orjson.loads(e) for e in queue.lrange(f"{p}.detect.anomaly.list.{sid}.{sid}1", 0, -1)
        ]

    # 303 (priority 10) and 304 (priority 20) share the priority group "disk_full": on
    # 10.0.0.1 both match and 304 inhibits 303, whose check result is still written.
    [only_other_host] = anomalies(303)
    assert only_other_host["data"]["dimensions"]["bk_target_ip"] == "10.0.0.2"
    [on_data] = anomalies(304)
    assert on_data["data"]["dimensions"]["disk"] == "/data"
    assert list(on_data["anomaly"]) == ["1"]
    assert on_data["anomaly"]["1"]["anomaly_message"] == "磁盘(/data)剩余空间只有3%"
    assert on_data["strategy_snapshot_key"] == f"{p}.cache.strategy.snapshot.304.1714000000"
    md5_1 = on_data["data"]["record_id"].split(".")[0]
    md5_2 = only_other_host["data"]["record_id"].split(".")[0]
    assert service_client.hgetall(f"{p}.access.data.priority.disk_full") == {
        md5_1.encode(): f"20:{now}".encode(),
        md5_2.encode(): f"10:{now}".encode(),
    }
    assert 0 < service_client.ttl(f"{p}.access.data.priority.disk_full") <= 600
    [nginx] = anomalies(313)
    assert (nginx["data"]["value"], nginx["data"]["time"]) == ("nginx down", now)
    assert nginx["data"]["dimensions"]["bk_host_id"] == 41
    [restart] = anomalies(309)
    dims = restart["data"]["dimensions"]
    assert (dims["event_name"], dims["process_name"], dims["agent_version"]) == (
        "process_restart_success",
        "nginx",
        "v1",
    )
    assert restart["data"]["record_id"].split(".")[0] == count_md5(dims)
    [core] = anomalies(305)
    assert core["data"]["dimensions"]["__additional_dimensions"] == {"corefile": "/data/core.1"}
    text = "nginx进程因为SIGSEGV异常信号产生corefile：/data/core.1"  # noqa: RUF001
    assert core["anomaly"]["3"]["anomaly_message"] == text
    ooms = anomalies(307)
    assert len({o["data"]["record_id"] for o in ooms}) == 2
    assert sorted(queue.keys(f"{p}.detect.anomaly.list.*")) == [
        f"{p}.detect.anomaly.list.{sid}.{sid}1".encode() for sid in (303, 304, 305, 307, 309, 313)
    ]
    signals = sorted(queue.lrange(f"{p}.detect.anomaly.signal", 0, -1))
    assert signals == [f"{sid}.{sid}1".encode() for sid in (303, 304, 305, 307, 309, 313)]

    assert service_client.zrange(
        f"{p}.detect.result.304.3041.{md5_1}.1", 0, -1, withscores=True
    ) == [(f"{now}|ANOMALY".encode(), float(now))]
    assert service_client.exists(f"{p}.detect.result.303.3031.{md5_1}.2")
    assert len(list(service_client.scan_iter(match=f"{p}.detect.result.*"))) == 8
    checkpoint = service_client.hgetall(f"{p}.detect.last.checkpoint.303.3031")
    assert sorted(checkpoint.values()) == [str(now).encode()] * 2
    snapshots = sorted(
        k.decode() for k in service_client.scan_iter(match=f"{p}.cache.strategy.snapshot.*")
    )
    assert snapshots == [
        f"{p}.cache.strategy.snapshot.{s}.1714000000" for s in (303, 304, 305, 307, 309, 313)
    ]
    assert orjson.loads(service_client.get(snapshots[0]))["id"] == 303
    assert not service_client.exists(f"{p}.access.event.qos.control")

    dlq = [orjson.loads(m) for m in read_all(env.bootstrap, env.dlq_topic)]
    assert Counter(m["reason"] for m in dlq) == Counter(BAD.values())
    assert {m["flow"] for m in dlq} == {"event"}


def test_a_claim_older_than_ten_intervals_leaves_the_priority_hash(event_env, service_client):
    """``PriorityChecker.sync_priority`` (``access/priority.py``) HDELs every claim for which
    ``float(timestamp) + interval * 10 < now``. 303 (priority 10) claims 10.0.0.2's disk at
    ``now - 700``; at 10.0.0.1's event ``now`` that claim is 700 s old (interval 60), so the
    event's writes delete it and the hash keeps 304's claim of 10.0.0.1 alone. One partition
    (one key), so the two events are checked in the order sent."""
    env = event_env
    now = int(time.time()) - 60
    disk = {"free": 3, "file_system": "/dev/vdb1", "fstype": "ext4"}
    messages = [
        gse("10.0.0.2", now - 700, 6, disk="/", **disk),
        gse("10.0.0.1", now, 6, disk="/data", **disk),
    ]
    produce(env.bootstrap, env.topics["EVENT"], [orjson.dumps(m) for m in messages], one_partition)

    run(bytewax_command("flows.event"), env.environ())

    queue = redis.Redis.from_url(env.redis_url)
    [claimant] = queue.lrange(f"{env.prefix}.detect.anomaly.list.304.3041", 0, -1)
    md5 = orjson.loads(claimant)["data"]["record_id"].split(".")[0]
    assert service_client.hgetall(f"{env.prefix}.access.data.priority.disk_full") == {
        md5.encode(): f"20:{now}".encode()
    }


def test_repeated_sigkills_each_resumed_equal_an_uninterrupted_run(
    event_env, service_client, tmp_path
):
    env = event_env
    # Enough input that a run resumed after a kill still has work left at its next snapshot:
    # the flow takes a batch at a time and drains 20,000 events within one snapshot interval.
    produce(env.bootstrap, env.topics["EVENT"], sample_events(80000, int(time.time())), by_host)
    queue = redis.Redis.from_url(env.redis_url)
    dbs = {"queue": queue, "service": service_client}
    reference = FlowEnv(env.bootstrap, env.redis_url, env.prefix + "ref", env.topics, env.dlq_topic)
    run(bytewax_command("flows.event"), reference.environ())

    soaked = FlowEnv(env.bootstrap, env.redis_url, env.prefix + "soak", env.topics, env.dlq_topic)
    crash_soak("flows.event", soaked, tmp_path, kills=4)

    assert snapshot_dbs(dbs, soaked.prefix) == snapshot_dbs(dbs, reference.prefix)


def test_writes_what_main_before_the_performance_work_writes(
    event_env, service_client, baseline_checkout
):
    """On 20,000 sample events (every type, expired and malformed ones among them, keyed by
    host), the batched flow writes exactly what main wrote before the performance work."""
    env = event_env
    produce(env.bootstrap, env.topics["EVENT"], sample_events(20000, int(time.time())), by_host)
    dbs = {"queue": redis.Redis.from_url(env.redis_url), "service": service_client}
    today = FlowEnv(env.bootstrap, env.redis_url, env.prefix + "now", env.topics, env.dlq_topic)
    run(bytewax_command("flows.event"), today.environ())
    before = FlowEnv(env.bootstrap, env.redis_url, env.prefix + "was", env.topics, env.dlq_topic)
    run(bytewax_command("flows.event"), before.environ(), baseline_checkout)

    expected = snapshot_dbs(dbs, before.prefix)
    assert len(expected) > 1000
    assert snapshot_dbs(dbs, today.prefix) == expected


BUSINESS_OF = {s.id: s.bk_biz_id for s in load_strategy_file(BUNDLED_STRATEGIES)}


def test_two_deployments_on_the_hash_ring_together_write_one_run(event_env, service_client):
    """Sharded by the host's business (2 and 3 in the samples): each deployment writes only its
    businesses' anomalies, and together they write what one deployment writes."""
    env = event_env
    produce(env.bootstrap, env.topics["EVENT"], sample_events(3000, int(time.time())), by_host)
    dbs = {"queue": redis.Redis.from_url(env.redis_url), "service": service_client}
    whole = FlowEnv(env.bootstrap, env.redis_url, env.prefix + "all", env.topics, env.dlq_topic)
    run(bytewax_command("flows.event"), whole.environ())
    expected = snapshot_dbs(dbs, whole.prefix)

    merged: dict[tuple[str, str], list[str]] = {}
    for node in ("east", "west"):
        shard = FlowEnv(env.bootstrap, env.redis_url, env.prefix + node, env.topics, env.dlq_topic)
        ring = {"ALARMFLOW_HASH_RING_NODES": "east,west", "ALARMFLOW_HASH_RING_NODE": node}
        run(bytewax_command("flows.event"), shard.environ(**ring))
        written = snapshot_dbs(dbs, shard.prefix)
        snapshots = [k for (_, k) in written if ".cache.strategy.snapshot." in k]
        businesses = {BUSINESS_OF[int(k.split(".")[-2])] for k in snapshots}
        assert {HashRing(["east", "west"]).get_node(str(b)) for b in businesses} == {node}
        for key, entry in written.items():
            content = entry.content if isinstance(entry.content, tuple) else (entry.content,)
            merged.setdefault(key, []).extend(content)

    signals = ("queue", ".detect.anomaly.signal")
    assert set(merged.pop(signals)) == set(expected.pop(signals).content)
    assert {key: sorted(content) for key, content in merged.items()} == {
        key: sorted(e.content if isinstance(e.content, tuple) else (e.content,))
        for key, e in expected.items()
    }
