"""Replay a topic from an offset or a time into a separate prefix, on the real broker and Redis."""

from __future__ import annotations

import subprocess
import sys
import time

import orjson
import pytest
import redis

from alarmflow.kafka_tools import produce
from alarmflow.report import snapshot
from tests.flows.flowrun import REPO, FlowEnv

pytestmark = pytest.mark.integration


def alerts(first: int, count: int) -> list[bytes]:
    return [
        orjson.dumps(
            {
                "event_id": f"e{i}",
                "plugin_id": "p",
                "alert_name": "CPU usage high",
                "bk_biz_id": 2,
                "time": int(time.time()),
            }
        )
        for i in range(first, first + count)
    ]


def replay(env: FlowEnv, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alarmflow.replay", "flows.alert", *args],
        env=env.environ(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def replayed_ids(client: redis.Redis, prefix: str) -> set[str]:
    lists = [e.content for k, e in snapshot(client, prefix).items() if ".access.alert.101." in k]
    return {orjson.loads(entry)["event_id"] for entries in lists for entry in entries}


def test_replay_from_a_time_or_an_offset_writes_only_what_follows(
    kafka_broker, redis_server, make_flow_env
):
    env = make_flow_env(1)
    stem = env.prefix.split(".")[0]
    produce(kafka_broker.bootstrap, env.topics["ALERT"], alerts(0, 30))
    time.sleep(1.5)
    cut = int(time.time())
    time.sleep(1.5)
    produce(kafka_broker.bootstrap, env.topics["ALERT"], alerts(30, 20))
    client = redis.Redis.from_url(redis_server.url(9))

    by_time = replay(env, "--prefix", f"{stem}t.ee", "--from-time", str(cut))
    by_offset = replay(env, "--prefix", f"{stem}o.ee", "--from-offset", "45")

    assert by_time.returncode == 0, by_time.stderr
    assert "20/20 messages" in by_time.stderr and "consumed" in by_time.stdout
    assert replayed_ids(client, f"{stem}t.ee") == {f"e{i}" for i in range(30, 50)}
    assert by_offset.returncode == 0, by_offset.stderr
    assert replayed_ids(client, f"{stem}o.ee") == {f"e{i}" for i in range(45, 50)}
    assert snapshot(client, env.prefix) == {}


def test_replay_refuses_the_live_prefix(flow_env):
    done = replay(flow_env, "--prefix", flow_env.prefix, "--from-beginning")
    assert done.returncode == 2
    assert "must differ from the live prefix" in done.stderr
