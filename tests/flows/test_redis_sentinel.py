"""Redis Sentinel, bkmonitor's usual high availability, with Debian's ``redis-sentinel`` and two
``redis-server``s (a master and its replica): the flow finds the master through the sentinel,
follows it through a failover mid-run and ends as an uninterrupted run. A sentinel that lets in
only an ACL user with the flows' one sentinel command serves the flow as an open one does, and
credentials it refuses stop the flow at start with one line naming them."""

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
from state.acl import acl_rules, sentinel_acl_rules
from state.idempotent import NotReplicated, OncePusher, Op, Push, Write
from state.keys import Backend
from tests.flows.flowrun import bytewax_command, one_partition, run, snapshot_dbs, start
from tests.flows.test_redis_outage import ends_as_an_uninterrupted_run, metric, on, wait_for
from tests.flows.test_secure import start_failure

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


SENTINEL_USERS = {
    "admin": ("the-admin-password", "+@all"),
    "alarmflow": ("the-sentinel-password", sentinel_acl_rules()),
}
"""The sentinel's users (its default user off): the test's own, and the flows' with
:func:`state.acl.sentinel_acl_rules`."""


class Guarded(NamedTuple):
    master: RedisServer
    sentinel: RedisSentinel


@pytest.fixture
def guarded(tmp_path: Path, free_port: Callable[[], int]) -> Iterator[Guarded]:
    """A master without replicas and a sentinel that lets in only :data:`SENTINEL_USERS`."""
    master = RedisServer(free_port(), tmp_path / "master")
    sentinel = RedisSentinel(
        free_port(), tmp_path / "sentinel", master.port, MASTER, users=SENTINEL_USERS
    )
    try:
        master.start()
        sentinel.start()
        yield Guarded(master, sentinel)
    finally:
        sentinel.stop()
        master.stop()


def sentinel_login(user: str, password: str) -> dict[str, str]:
    return {
        "ALARMFLOW_REDIS_SENTINEL_USERNAME": user,
        "ALARMFLOW_REDIS_SENTINEL_PASSWORD": password,
        "ALARMFLOW_REDIS_MIN_REPLICAS": "0",  # the master has no replica here
    }


def test_the_flow_writes_through_a_sentinel_that_lets_in_only_its_acl_user(flow_env, guarded):
    """The alert flow finds the master through the sentinel as user ``alarmflow`` (only
    ``SENTINEL MASTERS``) and writes what a run straight to the master writes."""
    produce(flow_env.bootstrap, flow_env.topics["ALERT"], sample_messages(500, NOW), one_partition)
    client = redis.Redis(port=guarded.master.port, db=9)
    prefixes = {"sentinel": flow_env.prefix + "viasentinel", "direct": flow_env.prefix + "direct"}
    user, (password, _rules) = "alarmflow", SENTINEL_USERS["alarmflow"]
    through = on(flow_env, guarded.sentinel.url(9), prefixes["sentinel"])
    run(bytewax_command("flows.alert"), through.environ(**sentinel_login(user, password)))
    direct = on(flow_env, guarded.master.url(9), prefixes["direct"])
    run(bytewax_command("flows.alert"), direct.environ())

    written = {name: snapshot_dbs({"9": client}, prefix) for name, prefix in prefixes.items()}
    assert written["sentinel"] == written["direct"]
    assert written["sentinel"]


@pytest.mark.parametrize(
    ("user", "password"),
    [("alarmflow", "a-wrong-sentinel-password"), ("", ""), ("admin", "the-sentinel-password")],
)
def test_credentials_the_sentinel_refuses_stop_the_flow_at_start_with_one_line(
    flow_env, guarded, user, password
):
    env = on(flow_env, guarded.sentinel.url(9), flow_env.prefix)
    _elapsed, lines, printed = start_failure(env, **sentinel_login(user, password))

    assert len(lines) == 1, printed[-3000:]
    sentinel = f"127.0.0.1:{guarded.sentinel.port}"
    assert f"Redis at master {MASTER} of sentinels {sentinel} (ALARMFLOW_REDIS_URL)" in lines[0]
    assert (
        f"sentinel {sentinel} refused the credentials of sentinel user {user or 'default'!r}"
        " (ALARMFLOW_REDIS_SENTINEL_USERNAME and ALARMFLOW_REDIS_SENTINEL_PASSWORD)" in lines[0]
    )
    for secret in ("a-wrong-sentinel-password", "the-sentinel-password"):
        assert secret not in printed


def test_a_master_name_the_sentinel_does_not_know_stops_the_flow_at_start_saying_so(
    flow_env, guarded
):
    url = guarded.sentinel.url(9).replace(f"master={MASTER}", "master=nosuch")
    user, (password, _rules) = "alarmflow", SENTINEL_USERS["alarmflow"]
    _elapsed, lines, printed = start_failure(
        on(flow_env, url, flow_env.prefix), **sentinel_login(user, password)
    )

    assert len(lines) == 1, printed[-3000:]
    sentinel = f"127.0.0.1:{guarded.sentinel.port}"
    assert f"no sentinel named it: sentinel {sentinel} knows no master of that name" in lines[0]
