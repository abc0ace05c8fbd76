"""Redis going away under a running flow, on the real broker and a Redis of the test's own:
the flow waits, says so once per change, and ends as an uninterrupted run; past the limit it
stops without claiming the end of its input."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from alarmflow.config import load_settings
from alarmflow.connections import redis_client
from alarmflow.kafka_tools import produce
from alarmflow.report import snapshot
from alarmflow.samples import sample_messages
from alarmflow.services import RedisServer, port_open
from flows.outage import Outage
from state.idempotent import OncePusher, Op, Push, Write
from state.keys import Backend
from tests.flows.flowrun import (
    FlowEnv,
    bytewax_command,
    run,
    start,
)
from tests.flows.test_alert import scrape

pytestmark = pytest.mark.integration

NOW = int(time.time())
OUTAGE_S = 35


@pytest.fixture
def own_redis(tmp_path: Path, free_port: Callable[[], int]) -> Iterator[RedisServer]:
    """A Redis that keeps its data across a restart, for this test alone."""
    server = RedisServer(free_port(), tmp_path / "redis", persistent=True)
    server.start()
    yield server
    server.stop()


def on(env: FlowEnv, redis_url: str, prefix: str) -> FlowEnv:
    return FlowEnv(env.bootstrap, redis_url, prefix, env.topics, env.dlq_topic)


def normalised(client: redis.Redis, prefix: str) -> dict:
    return {key[len(prefix) :]: value for key, value in snapshot(client, prefix).items()}


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def metric(port: int, name: str) -> float:
    try:
        return scrape(port).get(name, 0.0)
    except OSError:
        return -1.0


def start_live(
    flow_env: FlowEnv, own_redis: RedisServer, free_port: Callable[[], int], tmp_path: Path
) -> tuple[FlowEnv, subprocess.Popen, int]:
    """Start the alert flow tailing the topic into a "live" prefix on ``own_redis``, logging
    to ``flow.log``: its environment, its process and its metrics port."""
    metrics_port = free_port()
    while port_open(metrics_port):
        metrics_port = free_port()
    live = on(flow_env, own_redis.url(9), flow_env.prefix + "live")
    env = live.environ(ALARMFLOW_TAIL="1", ALARMFLOW_METRICS_PORT=str(metrics_port))
    return live, start(bytewax_command("flows.alert"), env, tmp_path / "flow.log"), metrics_port


def ends_as_an_uninterrupted_run(
    flow_env: FlowEnv, url: str, client: redis.Redis, live: FlowEnv, proc: subprocess.Popen
) -> None:
    """Run the alert flow to the end of the same topic into a reference prefix on the Redis of
    ``url``; the flow ``live`` (still running) must come to hold the same content."""
    reference = on(flow_env, url, flow_env.prefix + "ref")
    run(bytewax_command("flows.alert"), reference.environ())
    expected = normalised(client, reference.prefix)
    assert len(expected) > 100
    wait_for(lambda: normalised(client, live.prefix) == expected, 60, "the same content")
    assert proc.poll() is None


def test_a_redis_restart_mid_run_is_ridden_out_and_ends_as_an_uninterrupted_run(
    flow_env, own_redis, free_port, tmp_path
):
    before = list(sample_messages(3000, NOW, seed=5))
    during = list(sample_messages(3000, NOW, seed=6))
    client = redis.Redis.from_url(own_redis.url(9))
    topic = flow_env.topics["ALERT"]
    produce(flow_env.bootstrap, topic, before)
    live, proc, metrics_port = start_live(flow_env, own_redis, free_port, tmp_path)
    try:
        consumed = "alarmflow_consumed_total"
        wait_for(lambda: metric(metrics_port, consumed) == len(before), 60, "the first half")
        own_redis.stop()
        produce(flow_env.bootstrap, topic, during)
        wait_for(lambda: metric(metrics_port, "alarmflow_redis_waiting") == 1, 30, "waiting")
        time.sleep(OUTAGE_S)  # the outage itself: Redis stays down this long
        assert proc.poll() is None, "the flow stopped during the outage"
        own_redis.start()
        total = len(before) + len(during)
        wait_for(lambda: metric(metrics_port, consumed) == total, 60, "the second half")
        wait_for(lambda: metric(metrics_port, "alarmflow_redis_waiting") == 0, 60, "Redis back")

        ends_as_an_uninterrupted_run(flow_env, own_redis.url(9), client, live, proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)

    lines = [
        line for line in (tmp_path / "flow.log").read_text().splitlines() if "flows.outage" in line
    ]
    assert len([line for line in lines if "unavailable (" in line]) == 1
    assert len([line for line in lines if "still unavailable" in line]) == OUTAGE_S // 30
    assert len([line for line in lines if "is back after" in line]) == 1
    assert len(lines) == 2 + OUTAGE_S // 30, lines


def test_an_outage_longer_than_the_limit_stops_the_flow_without_claiming_the_end(
    flow_env, own_redis, tmp_path
):
    produce(flow_env.bootstrap, flow_env.topics["ALERT"], list(sample_messages(200, NOW)))
    live = on(flow_env, own_redis.url(9), flow_env.prefix)
    env = live.environ(ALARMFLOW_TAIL="1", ALARMFLOW_REDIS_OUTAGE_S="2")
    client = redis.Redis.from_url(own_redis.url(9))
    proc = start(bytewax_command("flows.alert"), env, tmp_path / "flow.log")
    wait_for(lambda: bool(snapshot(client, live.prefix)), 60, "the first writes")
    own_redis.stop()
    produce(flow_env.bootstrap, flow_env.topics["ALERT"], list(sample_messages(200, NOW, 8)))

    assert proc.wait(60) != 0
    log = (tmp_path / "flow.log").read_text()
    assert "unavailable for 2s; stopping, recovery replays" in log
    assert "stopped before its input ended" in log
    assert "end of input: " not in log


def test_a_full_redis_is_waited_out_and_its_records_are_not_dead_lettered(
    flow_env, own_redis, free_port, tmp_path
):
    """A Redis at its ``maxmemory`` refuses writes (``OOM``) until memory is freed: the flow
    waits as for any outage, and once Redis takes writes again ends as an uninterrupted run. (The
    push-once script used to take the refusal for each record's own error and dead-letter
    every record of the batch.)"""
    client = redis.Redis.from_url(own_redis.url(9))
    topic = flow_env.topics["ALERT"]
    produce(flow_env.bootstrap, topic, list(sample_messages(200, NOW, seed=11)))
    live, proc, metrics_port = start_live(flow_env, own_redis, free_port, tmp_path)
    try:
        consumed = "alarmflow_consumed_total"
        wait_for(lambda: metric(metrics_port, consumed) == 200, 60, "the first alerts")
        client.config_set("maxmemory", 1)
        produce(flow_env.bootstrap, topic, list(sample_messages(200, NOW, seed=12)))
        wait_for(lambda: metric(metrics_port, "alarmflow_redis_waiting") == 1, 30, "waiting")
        client.config_set("maxmemory", 0)
        wait_for(lambda: metric(metrics_port, "alarmflow_redis_waiting") == 0, 60, "Redis back")

        ends_as_an_uninterrupted_run(flow_env, own_redis.url(9), client, live, proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    outage = [line for line in (tmp_path / "flow.log").read_text().splitlines() if "outage" in line]
    assert "used memory > 'maxmemory'" in outage[0]


def test_an_interrupt_during_an_outage_stops_the_flow_without_waiting_it_out(
    flow_env, own_redis, free_port, tmp_path
):
    """Ctrl-C (SIGINT) while the flow waits for a Redis that refuses writes: the flow stops
    at once instead of after ``ALARMFLOW_REDIS_OUTAGE_S`` (300 s): Bytewax closes the sink,
    its writer stops waiting for Redis, and recovery would replay the batch. (It used to wait
    out the whole outage before it exited.)"""
    client = redis.Redis.from_url(own_redis.url(9))
    topic = flow_env.topics["ALERT"]
    produce(flow_env.bootstrap, topic, list(sample_messages(200, NOW, seed=13)))
    _, proc, metrics_port = start_live(flow_env, own_redis, free_port, tmp_path)
    try:
        wait_for(lambda: metric(metrics_port, "alarmflow_consumed_total") == 200, 60, "alerts")
        client.config_set("maxmemory", 1)
        produce(flow_env.bootstrap, topic, list(sample_messages(200, NOW, seed=14)))
        wait_for(lambda: metric(metrics_port, "alarmflow_redis_waiting") == 1, 30, "waiting")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) != 0
    finally:
        client.config_set("maxmemory", 0)
        if proc.poll() is None:
            proc.kill()
    log = (tmp_path / "flow.log").read_text()
    assert "the flow is stopping, so not waiting for it, recovery replays" in log
    assert "stopped before its input ended" in log


LOADING_KEYS = 10_000
"""Keys a restarted Redis reads back, a millisecond each (``key-load-delay``): ten seconds of
LOADING, longer than redis-py's own retries of a command (three, at most 7 s of backoff)."""


def loading(client: redis.Redis) -> bool:
    """Whether the server answers that it is loading its data (False while it does not
    listen yet)."""
    try:
        client.ping()
    except redis.BusyLoadingError:
        return True
    except redis.ConnectionError:
        return False
    return False


def test_a_redis_loading_its_data_after_a_restart_is_waited_out(tmp_path, free_port, caplog):
    """A restarted Redis answers LOADING until it has read its data back (minutes, for a large
    one): the sink's script call is refused as a whole and waited out as an outage, not taken
    for its records' error, and its records are written once the data is in."""
    slow_load = {"key-load-delay": "1000", "loading-process-events-interval-bytes": "1024"}
    server = RedisServer(free_port(), tmp_path / "redis", options=slow_load)
    server.start()
    restart = threading.Thread(target=server.start)
    probe = redis.Redis.from_url(server.url(1), retry=Retry(NoBackoff(), 0))
    batch = [
        Push(Write(Op.MARK, f"m{i}", ttl=60), (Write(Op.LPUSH, "l", b"v", 60),)) for i in range(3)
    ]
    try:
        probe.mset({f"k{i}": i for i in range(LOADING_KEYS)})
        probe.save()
        server.stop()
        restart.start()
        wait_for(lambda: loading(probe), 30, "the restarted server to load its data")
        client = redis_client(server.url(1), load_settings({}))
        pusher = OncePusher(client, {Backend.QUEUE: 1, Backend.SERVICE: 2})
        with caplog.at_level("WARNING", logger="flows.outage"):
            written = Outage("t_loading", server.url(1), 60).run(lambda: pusher.push(batch))
        assert written == [0, 0, 0]
        assert not loading(probe)
        assert probe.llen("l") == 3
        refused, back = [r.getMessage() for r in caplog.records if r.name == "flows.outage"]
        assert "loading the dataset in memory" in refused
        assert "is back after" in back
    finally:
        restart.join()
        server.stop()
