"""Run flows as real ``python -m bytewax.run`` / launcher processes against the test services."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import redis

from alarmflow.launch import init_recovery
from alarmflow.report import Entry, snapshot

REPO = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 180
BASELINE = "b5717c3"
"""Main before the performance work of issue 13: optimised flows must write what it writes."""


@dataclass(frozen=True)
class FlowEnv:
    """The environment of one flow run: services, topics and key prefix."""

    bootstrap: str
    redis_url: str
    prefix: str
    topics: dict[str, str]
    dlq_topic: str
    settings: tuple[tuple[str, str], ...] = ()
    """Further ``ALARMFLOW_*`` settings of every run (e.g. a strategies file)."""

    def environ(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ALARMFLOW_", "BYTEWAX_"))}
        env.update(
            PYTHONPATH=str(REPO),
            RUST_BACKTRACE="0",
            ALARMFLOW_KAFKA_BOOTSTRAP=self.bootstrap,
            ALARMFLOW_REDIS_URL=self.redis_url,
            ALARMFLOW_KEY_PREFIX=self.prefix,
            ALARMFLOW_DLQ_TOPIC=self.dlq_topic,
            ALARMFLOW_TAIL="0",
            ALARMFLOW_START="earliest",
            ALARMFLOW_METRICS_PORT="0",
        )
        env.update({f"ALARMFLOW_{kind}_TOPICS": topic for kind, topic in self.topics.items()})
        env.update(self.settings)
        env.update(extra)
        return env


def one_partition(_message: bytes) -> bytes:
    """A Kafka key for every message: all of them on one partition, read in the order sent."""
    return b"one"


def bytewax_command(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "bytewax.run", module, *args]


def launcher_command(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "alarmflow.launch", module, *args]


def export_commit(commit: str, directory: Path) -> Path:
    """The repository's tree at ``commit``, written into ``directory`` (``git archive``)."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", commit], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(directory)], input=archive.stdout, check=True)
    return directory


def run(
    command: list[str], env: dict[str, str], checkout: Path = REPO
) -> subprocess.CompletedProcess[str]:
    """Run to completion from ``checkout`` (its code first on the path); fail with the
    process's output if it does not exit 0."""
    env = dict(env, PYTHONPATH=str(checkout))
    done = subprocess.run(
        command, env=env, cwd=checkout, capture_output=True, text=True, timeout=RUN_TIMEOUT_S
    )
    assert done.returncode == 0, f"{command} exited {done.returncode}:\n{done.stderr[-4000:]}"
    return done


def start(
    command: list[str], env: dict[str, str], log: Path, checkout: Path = REPO
) -> subprocess.Popen[bytes]:
    """Start in the background from ``checkout`` (its code first on the path), output to
    ``log``; SIGINT interrupts it as it would a command run from a terminal, even when the
    tests run in the background (a shell starts a background job with SIGINT ignored, and the
    ignoring is inherited)."""
    env = dict(env, PYTHONPATH=str(checkout))
    with log.open("wb") as out:
        return subprocess.Popen(
            command,
            env=env,
            cwd=checkout,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_interruptible,
        )


def _interruptible() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_expecting_failure(
    command: list[str], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run to completion and assert that it failed; return its output."""
    done = subprocess.run(
        command, env=env, cwd=REPO, capture_output=True, text=True, timeout=RUN_TIMEOUT_S
    )
    assert done.returncode != 0, f"{command} should have failed:\n{done.stderr[-2000:]}"
    return done


def recovery_snapshots(directory: Path) -> int:
    """How many state snapshots the recovery store (one partition) holds."""
    with sqlite3.connect(f"file:{directory / 'part-0.sqlite3'}?mode=ro", uri=True) as db:
        return db.execute("SELECT count(*) FROM snaps").fetchone()[0]


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s waiting for {what}"
        time.sleep(0.1)


def recovery_commit(directory: Path) -> int:
    """The last epoch the recovery store (one partition) committed: it grows with every
    snapshot the flow completes."""
    with sqlite3.connect(f"file:{directory / 'part-0.sqlite3'}?mode=ro", uri=True) as db:
        return db.execute("SELECT coalesce(max(commit_epoch), 0) FROM commits").fetchone()[0]


def _ended_or_committed(
    proc: subprocess.Popen[bytes], recovery: Path, before: int
) -> Callable[[], bool]:
    return lambda: proc.poll() is not None or recovery_commit(recovery) > before


def crash_soak(
    module: str, env: FlowEnv, workdir: Path, kills: int, seed: int = 3, *args: str
) -> None:
    """Run ``module`` with recovery and SIGKILL it at a random moment (up to 0.5 s) after it
    took a snapshot of its own, resuming from the recovery store each time, ``kills`` times;
    then run it to the end of its input. The killed runs tail their topics, so none ends
    before its kill however fast the flow is, and each has made durable progress."""
    recovery = workdir / "soak-recovery"
    init_recovery(recovery, 1)
    command = bytewax_command(module, "-r", str(recovery), "-s", "1", "-b", "0", *args)
    chaos = random.Random(seed)
    for attempt in range(kills):
        log = workdir / f"soak-{attempt}.log"
        proc = start(command, env.environ(ALARMFLOW_TAIL="1"), log)
        progressed = _ended_or_committed(proc, recovery, recovery_commit(recovery))
        wait_until(progressed, "a snapshot of this run", RUN_TIMEOUT_S)
        try:
            proc.wait(timeout=chaos.uniform(0.0, 0.5))
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            continue
        raise AssertionError(f"a tailing run ended by itself:\n{log.read_text()[-3000:]}")
    run(command, env.environ())


def snapshot_dbs(
    clients: dict[str, redis.Redis], prefix: str, skip: str = "\0"
) -> dict[tuple[str, str], Entry]:
    """``snapshot`` of several databases, keys without the prefix (and values without it too:
    anomalies name their strategy snapshot key), those containing ``skip`` left out."""

    def cut(content):
        if isinstance(content, tuple):
            return tuple(cut(member) for member in content)
        return content.replace(prefix, "") if isinstance(content, str) else content

    return {
        (db, key[len(prefix) :]): Entry(entry.kind, cut(entry.content))
        for db, client in clients.items()
        for key, entry in snapshot(client, prefix).items()
        if skip not in key
    }
