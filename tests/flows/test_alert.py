"""The alert flow on the real Kafka broker and Redis, run as ``python -m bytewax.run``."""

from __future__ import annotations

import shutil
import signal
import sys
import time
import urllib.request
from collections import Counter

import orjson
import pytest
import redis
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewPartitions

from alarmflow.kafka_tools import produce, read_all
from alarmflow.report import snapshot
from alarmflow.samples import sample_messages
from alarmflow.services import consecutive_free_ports
from tests.flows.flowrun import (
    FlowEnv,
    bytewax_command,
    crash_soak,
    launcher_command,
    run,
    run_expecting_failure,
    start,
    wait_until,
)

pytestmark = pytest.mark.integration

NOW = int(time.time())


def alert(event_id: str, **fields) -> dict:
    base = {
        "event_id": event_id,
        "plugin_id": "zabbix",
        "alert_name": "CPU usage high",
        "bk_biz_id": 2,
        "target_type": "host",
        "target": "10.0.0.1",
        "time": NOW - 60,
    }
    return {**base, **fields}


CPU = alert("cpu-1")
CPU_RECOVERED = alert("cpu-1", status="recovered")
BY_STRATEGY = alert("load-1", alert_name="Load high", strategy_id=201)
DISK_DATA = alert("disk-1", alert_name="Disk full", tags=[{"key": "mount", "value": "/data"}])
DISK_TMP = alert("disk-2", alert_name="Disk full", tags=[{"key": "mount", "value": "/tmp"}])
POD_PROD = alert(
    "pod-1",
    alert_name="Pod CrashLoopBackOff",
    bk_biz_id=3,
    target_type="K8S-POD",
    tags=[{"key": "namespace", "value": "prod-pay"}],
)
UNKNOWN_STRATEGY = alert("x-1", strategy_id=999)
WRONG_BUSINESS = alert("cpu-9", bk_biz_id=5)
EXPIRED = alert("old-1", time=NOW - 2 * 86400)

VALID = [
    CPU,
    CPU_RECOVERED,
    BY_STRATEGY,
    DISK_DATA,
    DISK_TMP,
    POD_PROD,
    UNKNOWN_STRATEGY,
    WRONG_BUSINESS,
    EXPIRED,
]
BAD = {
    b"{not json": "not_json",
    b"[1, 2, 3]": "not_object",
    orjson.dumps({k: v for k, v in CPU.items() if k != "event_id"}): "missing_field",
    orjson.dumps(alert("biz-word", bk_biz_id="two")): "wrong_type",
    orjson.dumps(alert("huge", description="x" * (2 << 20))): "too_large",
}
EXPECTED_LISTS = {
    "access.alert.101.1001": ["cpu-1", "cpu-1"],
    "access.alert.201.2001": ["load-1"],
    "access.alert.102.1002": ["disk-1"],
    "access.alert.103.1003": ["pod-1"],
    "access.alert.103.1004": ["pod-1"],
}


def lists_by_event_id(client: redis.Redis, prefix: str) -> dict[str, list[str]]:
    out = {}
    for key, entry in snapshot(client, prefix).items():
        if entry.kind == "list" and ".access.alert." in key:
            out[key[len(prefix) + 1 :]] = sorted(orjson.loads(e)["event_id"] for e in entry.content)
    return out


def test_alerts_land_in_bkmonitor_layout_and_bad_input_goes_to_the_dlq(flow_env):
    messages = [orjson.dumps(a) for a in VALID]
    messages += [orjson.dumps(CPU), orjson.dumps(DISK_DATA)]  # exact duplicates
    messages += list(BAD)
    produce(flow_env.bootstrap, flow_env.topics["ALERT"], messages)

    run(bytewax_command("flows.alert"), flow_env.environ())

    client = redis.Redis.from_url(flow_env.redis_url)
    assert lists_by_event_id(client, flow_env.prefix) == EXPECTED_LISTS
    signal_key = f"{flow_env.prefix}.access.data.signal"
    assert sorted(client.lrange(signal_key, 0, -1)) == [b"101", b"102", b"103", b"201"]
    assert 0 < client.ttl(signal_key) <= 1800
    assert 0 < client.ttl(f"{flow_env.prefix}.access.alert.101.1001") <= 1800

    pod = orjson.loads(client.lindex(f"{flow_env.prefix}.access.alert.103.1003", 0))
    assert pod["status"] == "ABNORMAL"
    assert pod["severity"] == 3
    assert pod["target_type"] == "K8S-POD"
    assert pod["dedupe_keys"] == ["alert_name", "target_type", "target", "bk_biz_id"]

    dlq = [orjson.loads(m) for m in read_all(flow_env.bootstrap, flow_env.dlq_topic)]
    assert Counter(m["reason"] for m in dlq) == Counter(BAD.values())
    for record in dlq:
        assert record["topic"] == flow_env.topics["ALERT"]
        assert record["flow"] == "alert"
        assert {"error", "partition", "offset", "raw", "raw_bytes"} <= record.keys()
    huge = next(m for m in dlq if m["reason"] == "too_large")
    assert huge["raw_bytes"] > 2 << 20
    assert len(huge["raw"]) <= 64 * 1024


def test_rerunning_the_same_topic_adds_nothing(flow_env):
    produce(flow_env.bootstrap, flow_env.topics["ALERT"], [orjson.dumps(a) for a in VALID])
    run(bytewax_command("flows.alert"), flow_env.environ())
    client = redis.Redis.from_url(flow_env.redis_url)
    first = snapshot(client, flow_env.prefix)

    run(bytewax_command("flows.alert"), flow_env.environ())

    assert snapshot(client, flow_env.prefix) == first


def normalised(client: redis.Redis, prefix: str) -> dict:
    return {key[len(prefix) :]: value for key, value in snapshot(client, prefix).items()}


def with_prefix(env: FlowEnv, prefix: str) -> FlowEnv:
    return FlowEnv(env.bootstrap, env.redis_url, prefix, env.topics, env.dlq_topic)


@pytest.fixture
def sample_topic(flow_env) -> int:
    return produce(
        flow_env.bootstrap, flow_env.topics["ALERT"], sample_messages(30_000, NOW, seed=11)
    )


@pytest.mark.parametrize(
    "command",
    [
        bytewax_command("flows.alert", "-w", "2"),
        launcher_command("flows.alert", "-p", "2"),
    ],
    ids=["w2", "p2"],
)
def test_parallel_runs_write_what_one_worker_writes(flow_env, sample_topic, command):
    client = redis.Redis.from_url(flow_env.redis_url)
    single = with_prefix(flow_env, flow_env.prefix + "w1")
    run(bytewax_command("flows.alert"), single.environ())
    parallel = with_prefix(flow_env, flow_env.prefix + "par")
    command = (
        [*command, "--base-port", str(consecutive_free_ports())]
        if "alarmflow.launch" in command
        else command
    )

    run(command, parallel.environ())

    expected = normalised(client, single.prefix)
    assert len(expected) > 1000
    assert normalised(client, parallel.prefix) == expected


def test_writes_what_main_before_the_performance_work_writes(
    flow_env, sample_topic, baseline_checkout
):
    client = redis.Redis.from_url(flow_env.redis_url)
    today = with_prefix(flow_env, flow_env.prefix + "now")
    run(bytewax_command("flows.alert"), today.environ())
    before = with_prefix(flow_env, flow_env.prefix + "was")
    run(bytewax_command("flows.alert"), before.environ(), baseline_checkout)

    expected = normalised(client, before.prefix)
    assert len(expected) > 1000
    assert normalised(client, today.prefix) == expected


def test_repeated_sigkills_each_resumed_equal_an_uninterrupted_run(
    flow_env, sample_topic, tmp_path
):
    # Enough input that a run resumed after a kill still has work left at its next snapshot:
    # the flow takes a batch at a time and drains 30,000 alerts within one snapshot interval.
    produce(flow_env.bootstrap, flow_env.topics["ALERT"], sample_messages(90_000, NOW, seed=12))
    client = redis.Redis.from_url(flow_env.redis_url)
    reference = with_prefix(flow_env, flow_env.prefix + "ref")
    run(bytewax_command("flows.alert"), reference.environ())

    soaked = with_prefix(flow_env, flow_env.prefix + "soak")
    crash_soak("flows.alert", soaked, tmp_path, kills=4)

    assert normalised(client, soaked.prefix) == normalised(client, reference.prefix)


def test_a_bad_setting_stops_the_flow_with_one_clear_line(flow_env):
    done = run_expecting_failure(
        bytewax_command("flows.alert"),
        flow_env.environ(ALARMFLOW_START="yesterday", ALARMFLOW_METRICS_PORT="x"),
    )
    lines = [line for line in done.stderr.splitlines() if "config error" in line]
    assert len(lines) == 2
    assert any(
        "ALARMFLOW_START='yesterday'" in line and "earliest, latest" in line for line in lines
    )
    assert any("ALARMFLOW_METRICS_PORT='x'" in line for line in lines)


def test_an_unreachable_broker_is_reported_not_waited_on_forever(flow_env, free_port):
    done = run_expecting_failure(
        bytewax_command("flows.alert"),
        flow_env.environ(ALARMFLOW_KAFKA_BOOTSTRAP=f"127.0.0.1:{free_port()}"),
    )
    assert "did not answer" in done.stderr


def scrape(port: int) -> dict[str, float]:
    """``alarmflow_*`` samples of one metrics endpoint, summed over labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("alarmflow_"):
            name, value = line.split("{", 1)[0].split(" ", 1)[0], float(line.rsplit(" ", 1)[1])
            totals[name] = totals.get(name, 0.0) + value
    return totals


def test_each_process_serves_its_own_metrics_and_they_add_up(flow_env, tmp_path):
    messages = [orjson.dumps(a) for a in VALID] + list(BAD)
    produce(flow_env.bootstrap, flow_env.topics["ALERT"], messages)
    base = consecutive_free_ports()
    env = flow_env.environ(ALARMFLOW_TAIL="1", ALARMFLOW_METRICS_PORT=str(base))
    mesh = consecutive_free_ports()
    proc = start(
        launcher_command("flows.alert", "-p", "2", "--base-port", str(mesh)),
        env,
        tmp_path / "p2.log",
    )
    try:
        totals: list[dict[str, float]] = []
        expected = {
            "alarmflow_consumed_total": len(messages),
            "alarmflow_rejected_total": len(BAD),
            "alarmflow_written_total": sum(len(v) for v in EXPECTED_LISTS.values()),
        }

        def summed() -> dict[str, float]:
            return {name: sum(t.get(name, 0) for t in totals) for name in expected}

        def all_counted() -> bool:
            # Reads, rejections and writes are counted at different steps (the writes by each
            # worker's writer thread), so wait for all of them.
            try:
                totals[:] = [scrape(base), scrape(base + 1)]
            except OSError:
                return False
            return all(summed()[name] >= count for name, count in expected.items())

        wait_until(all_counted, "both processes to count every message and write", 120)
        assert summed() == expected
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def test_two_deployments_on_the_hash_ring_split_businesses_and_together_write_one_run(
    flow_env, sample_topic
):
    client = redis.Redis.from_url(flow_env.redis_url)
    whole = with_prefix(flow_env, flow_env.prefix + "all")
    run(bytewax_command("flows.alert"), whole.environ())
    expected = normalised(client, whole.prefix)

    shards = {}
    for node in ("east", "west"):
        env = with_prefix(flow_env, flow_env.prefix + node)
        ring = {"ALARMFLOW_HASH_RING_NODES": "east,west", "ALARMFLOW_HASH_RING_NODE": node}
        run(bytewax_command("flows.alert"), env.environ(**ring))
        shards[node] = normalised(client, env.prefix)

    businesses = {
        node: {
            orjson.loads(v)["bk_biz_id"]
            for e in keys.values()
            if e.kind == "list"
            for v in e.content
            if v.startswith("{")
        }
        for node, keys in shards.items()
    }
    assert businesses == {"east": {3}, "west": {2}}

    def values(entry) -> tuple:
        return entry.content if isinstance(entry.content, tuple) else (entry.content,)

    merged: dict[str, list[str]] = {}
    for keys in shards.values():
        for key, entry in keys.items():
            merged.setdefault(key, []).extend(values(entry))
    # Under one shared prefix a strategy pending in both shards would be pending once.
    signals = ".access.data.signal"
    assert set(merged.pop(signals)) == set(expected.pop(signals).content)
    assert {key: sorted(content) for key, content in merged.items()} == {
        key: sorted(values(entry)) for key, entry in expected.items()
    }


def consumed_at_end(done) -> int:
    """The alerts a run consumed, from its "end of input" line."""
    [line] = [line for line in done.stderr.splitlines() if "end of input: " in line]
    return int(line.split("consumed[", 1)[1].split("]=", 1)[1].split(" ", 1)[0])


def test_partitions_added_to_the_input_are_read_by_a_restart_with_start_earliest(
    make_flow_env, tmp_path
):
    """A flow reads the partitions its topic had when it started. After partitions are added,
    a restart from the recovery store starts each partition with no recovered offset where
    ``ALARMFLOW_START`` says: with the default, ``latest``, at its end (skipping what was
    produced into it meanwhile), with ``earliest`` at its beginning, while the partitions
    with a recovered offset resume there either way (docs/delivery.md, "Sizing")."""
    env = make_flow_env(1)
    topic = env.topics["ALERT"]
    store = tmp_path / "recovery"
    store.mkdir()
    run([sys.executable, "-m", "bytewax.recovery", str(store), "1"], env.environ())
    recovered = bytewax_command("flows.alert", "-r", str(store), "-s", "1", "-b", "10")
    produce(env.bootstrap, topic, sample_messages(50, NOW, seed=21))
    first = run(recovered, env.environ(ALARMFLOW_START="earliest", ALARMFLOW_LOG_LEVEL="INFO"))
    assert consumed_at_end(first) == 50

    admin = AdminClient({"bootstrap.servers": env.bootstrap})
    [added] = admin.create_partitions([NewPartitions(topic, 2)]).values()
    added.result(30)
    producer = Producer({"bootstrap.servers": env.bootstrap})
    for message in sample_messages(40, NOW, seed=22):
        producer.produce(topic, message, partition=1)
    assert producer.flush(30) == 0
    copy = tmp_path / "copy"
    shutil.copytree(store, copy)

    latest = run(recovered, env.environ(ALARMFLOW_START="latest", ALARMFLOW_LOG_LEVEL="INFO"))
    assert consumed_at_end(latest) == 0
    earliest = bytewax_command("flows.alert", "-r", str(copy), "-s", "1", "-b", "10")
    resumed = run(earliest, env.environ(ALARMFLOW_START="earliest", ALARMFLOW_LOG_LEVEL="INFO"))
    assert consumed_at_end(resumed) == 40
