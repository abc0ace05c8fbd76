"""The multi-host form on loopback: three "hosts", each one ``alarmflow.launch -i N -a ...``
process with its own recovery directory, joined into one Bytewax cluster. Killed together
midway and started again, they resume from their recovery shares and Redis ends as one
uninterrupted process leaves it."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import redis

from alarmflow.kafka_tools import produce
from alarmflow.report import snapshot
from alarmflow.samples import sample_messages
from tests.flows.flowrun import REPO, FlowEnv, bytewax_command, launcher_command, run

pytestmark = pytest.mark.integration

HOSTS = 3


def normalised(client: redis.Redis, prefix: str) -> dict:
    return {key[len(prefix) :]: value for key, value in snapshot(client, prefix).items()}


def committed(directory: Path) -> int:
    """The last epoch a host's recovery share (its one partition) committed. (A share may hold
    no snapshots at all: each state key's snapshots go to the partition its key hashes to.)"""
    [part] = directory.glob("part-*.sqlite3")
    with sqlite3.connect(f"file:{part}?mode=ro", uri=True) as db:
        return db.execute("SELECT coalesce(max(commit_epoch), 0) FROM commits").fetchone()[0]


def start_hosts(env: FlowEnv, addresses: str, workdir: Path, log: str) -> list[subprocess.Popen]:
    """One launcher per host, each in its own session (so that a kill takes its children)."""
    hosts = []
    for host in range(HOSTS):
        recovery = workdir / f"host{host}" / "recovery"
        command = launcher_command("flows.alert", "-i", str(host), "-a", addresses)
        command += ["-r", str(recovery), "-s", "1", "-b", "0"]
        out = (workdir / f"host{host}" / log).open("wb")
        hosts.append(
            subprocess.Popen(
                command,
                env=env.environ(),
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    return hosts


def test_three_hosts_write_one_runs_output_and_resume_from_their_own_recovery(
    make_flow_env, free_port, tmp_path
):
    env = make_flow_env(6)
    # Enough input that the cluster is still reading when every host has committed an epoch
    # (a second after it starts).
    produce(env.bootstrap, env.topics["ALERT"], sample_messages(90_000, int(time.time()), seed=17))
    client = redis.Redis.from_url(env.redis_url)
    reference = FlowEnv(env.bootstrap, env.redis_url, env.prefix + "ref", env.topics, env.dlq_topic)
    run(bytewax_command("flows.alert"), reference.environ())
    expected = normalised(client, reference.prefix)
    lists = [k for k, e in expected.items() if e.kind == "list"]
    total = sum(expected[k].size for k in lists)

    cluster = FlowEnv(env.bootstrap, env.redis_url, env.prefix + "mh", env.topics, env.dlq_topic)
    addresses = ";".join(f"127.0.0.1:{free_port()}" for _ in range(HOSTS))
    for host in range(HOSTS):
        (tmp_path / f"host{host}").mkdir()
    hosts = start_hosts(cluster, addresses, tmp_path, "run1.log")
    shares = [tmp_path / f"host{host}" / "recovery" for host in range(HOSTS)]
    progress = lambda: sum(client.llen(cluster.prefix + k) for k in lists)  # noqa: E731
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and (
        progress() < total // 5
        or not all(s.exists() and list(s.glob("part-*")) and committed(s) for s in shares)
    ):
        assert all(h.poll() is None for h in hosts), "a host ended before it could be killed"
        time.sleep(0.02)
    for host in hosts:
        os.killpg(host.pid, signal.SIGKILL)
        host.wait()
    assert [sorted(p.name for p in s.glob("part-*.sqlite3")) for s in shares] == [
        [f"part-{host}.sqlite3"] for host in range(HOSTS)
    ]
    assert progress() < total, "the kill came after the last message"

    hosts = start_hosts(cluster, addresses, tmp_path, "run2.log")
    for host in hosts:
        assert host.wait(180) == 0

    assert normalised(client, cluster.prefix) == expected
