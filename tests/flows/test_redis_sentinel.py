"""Redis Sentinel, bkmonitor's usual high availability, with Debian's ``redis-sentinel`` and two
``redis-server``s (a master and its replica): the flow finds the master through the sentinel,
follows it through a failover mid-run and ends as an uninterrupted run."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
import redis

from alarmflow.kafka_tools import produce
from alarmflow.samples import sample_messages
from alarmflow.services import RedisServer, port_open
from alarmflow.services.redis import RedisSentinel
from state.acl import acl_rules
from state.idempotent import NotReplicated, OncePusher, Op, Push, Write
from state.keys import Backend
from tests.flows.flowrun import bytewax_command, start
from tests.flows.test_redis_outage import ends_as_an_uninterrupted_run, metric, on, wait_for

pytestmark = pytest.mark.integration

NOW = int(time.time())
MASTER = "alarmflow"


class Pair(NamedTuple):
    first: RedisServer
    second: RedisServer
    sentinel: RedisSentinel


def replica_ready(sentinel: RedisSentinel, replica: RedisServer) -> bool:
    """Whether the sentinel knows ``replica`` as a healthy replica that is in sync."""
    with sentinel.client() as client:
        known = client.sentinel_slaves(MASTER)
    return any(
        r["port"] == replica.port and r["master-link-status"] == "ok" and not r["is_sdown"]
        for r in known
    )


@pytest.fixture
def pair(tmp_path: Path, free_port: Callable[[], int]) -> Iterator[Pair]:
    first = RedisServer(free_port(), tmp_path / "first")
    second = RedisServer(free_port(), tmp_path / "second", replica_of=first.port)
    sentinel = RedisSentinel(free_port(), tmp_path / "sentinel", first.port, MASTER)
    try:
        first.start()
        second.start()
        sentinel.start()
        wait_for(lambda: replica_ready(sentinel, second), 60, "the sentinel to see the replica")
        yield Pair(first, second, sentinel)
    finally:
        sentinel.stop()
        second.stop()
        first.stop()


def test_a_batch_counts_as_written_once_the_replicas_have_it(pair, key_prefix):
    client = redis.Redis(port=pair.first.port, db=9)
    push = Push(
        Write(Op.MARK, f"{key_prefix}.m", ttl=60), (Write(Op.LPUSH, f"{key_prefix}.l", b"a"),)
    )

    assert OncePusher(client, {Backend.QUEUE: 9}, replicas=1).push([push]) == [0]
    with pytest.raises(NotReplicated, match="1 of 2 replicas") as raised:
        OncePusher(client, {Backend.QUEUE: 9}, replicas=2, replica_timeout_ms=100).push(
            [push._replace(marker=Write(Op.MARK, f"{key_prefix}.m2", ttl=60))]
        )
    assert raised.value.results == [0]
    assert redis.Redis(port=pair.second.port, db=9).lrange(f"{key_prefix}.l", 0, -1) == [b"a", b"a"]


def test_the_least_privilege_user_has_what_waiting_for_replicas_takes(pair, key_prefix):
    """:func:`state.acl.acl_rules`: a batch waited for by a replica goes as a pipeline, which
    checks that the script is loaded (SCRIPT EXISTS), loads it (SCRIPT LOAD), runs it and
    WAITs."""
    admin = redis.Redis(port=pair.first.port)
    admin.execute_command("ACL", "SETUSER", "flow", "on", ">pw", *acl_rules(key_prefix).split())
    admin.script_flush()
    client = redis.Redis(port=pair.first.port, db=9, username="flow", password="pw")
    push = Push(Write(Op.MARK, f"{key_prefix}.m", ttl=60), ())

    assert OncePusher(client, {Backend.QUEUE: 9}, replicas=1).push([push]) == [0]


def test_the_flow_follows_a_failover_mid_run_and_ends_as_an_uninterrupted_run(
    flow_env, pair, free_port, tmp_path
):
    before = list(sample_messages(2000, NOW, seed=21))
    during = list(sample_messages(4000, NOW, seed=22))
    topic = flow_env.topics["ALERT"]
    produce(flow_env.bootstrap, topic, before)
    metrics_port = free_port()
    while port_open(metrics_port):
        metrics_port = free_port()
    url = pair.sentinel.url(9)
    live = on(flow_env, url, flow_env.prefix + "live")
    # Behind Sentinel each batch waits for a replica (ALARMFLOW_REDIS_MIN_REPLICAS defaults to
    # 1): without that, writes the old master took after the promotion were lost here.
    env = live.environ(ALARMFLOW_TAIL="1", ALARMFLOW_METRICS_PORT=str(metrics_port))
    proc = start(bytewax_command("flows.alert"), env, tmp_path / "flow.log")
    consumed = "alarmflow_consumed_total"

    def read(count: int) -> bool:
        assert proc.poll() is None, (tmp_path / "flow.log").read_text()[-3000:]
        return metric(metrics_port, consumed) >= count

    try:
        wait_for(lambda: read(len(before)), 60, "the first part")
        chunks = [during[i : i + 200] for i in range(0, len(during), 200)]

        def trickle() -> None:
            for chunk in chunks:
                produce(flow_env.bootstrap, topic, chunk)
                time.sleep(0.1)

        producer = threading.Thread(target=trickle)
        producer.start()
        wait_for(lambda: read(len(before) + 1), 30, "more to read")
        pair.sentinel.failover()
        producer.join()
        new_master = ("127.0.0.1", pair.second.port)
        wait_for(lambda: pair.sentinel.master_address() == new_master, 60, "the failover")
        total = len(before) + len(during)
        wait_for(lambda: read(total), 60, "the rest")

        client = redis.Redis(port=pair.second.port, db=9)
        ends_as_an_uninterrupted_run(flow_env, url, client, live, proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    log = (tmp_path / "flow.log").read_text()
    assert "is back after" in log, "the failover went unnoticed: it happened too late"
