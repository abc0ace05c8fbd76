"""Alert access throughput, side by side in one run: the Bytewax flow (one process with one
worker, one process with two worker threads, two processes), old main's flow (one process with
one worker and with two), a plain confluent-kafka + redis-py loop, Quix Streams in two shapes,
and the stack's limit (Kafka -> orjson -> one pipelined LPUSH per record).

Every runner is a fresh process reading the same topic (6 partitions) on the real broker and
Redis, run alternately ``--repeat`` times; the table shows the median wall time, alerts/s and
each runner's ratio to the flow. A run on an empty topic measures each runner's fixed start-up
cost (interpreter, imports, Kafka metadata; for Quix Streams also its idle stop), and "net"
alerts/s leaves it out. Beside each runner's own CPU per alert the table gives the broker's and
Redis's meanwhile (``bench/server_cpu.py``): on two cores shared with them, what a runner asks
of the servers slows it as its own work does. Before timing, each runner but the limit
processes a small topic and its Redis output must equal the flow's.

    python -m bench.alert_throughput [--alerts 100000] [--repeat 3] [--old DIR] [--only LABEL...]

``--old`` is a checkout of old main (``git worktree add /work/wt-old 33cd407``); without it
that runner is left out. Quix Streams runs in its own virtualenv, made under ``.run/`` on
first use. With ``ALARMFLOW_KAFKA_BOOTSTRAP`` and ``ALARMFLOW_REDIS_URL`` set it uses those
services; otherwise it starts its own on free ports and stops them at the end.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis
from confluent_kafka import OFFSET_END, Consumer, Producer, TopicPartition

from alarmflow.kafka_tools import ensure_topics, produce
from alarmflow.report import snapshot
from alarmflow.samples import sample_messages
from alarmflow.services import KafkaBroker, RedisServer, consecutive_free_ports, free_port
from bench.server_cpu import ServerCpu

REPO = Path(__file__).resolve().parents[1]


def new_prefix() -> str:
    return f"bench{uuid.uuid4().hex[:8]}.ee"


QUIX_VENV = REPO / ".run" / "quix-venv"
QUIX_PACKAGES = ("quixstreams==3.28.1", "redis==8.1.0", "hiredis==3.5.0", "orjson==3.13.0")
PARTITIONS = 6
FLOW = "flow (-p 1)"
PORT = "{free port pair}"


@dataclass(frozen=True)
class Runner:
    label: str
    command: list[str]
    checkout: Path = REPO
    checked: bool = True  # its Redis output must equal the flow's


def quix_python() -> str:
    """The Quix Streams virtualenv's python, made on first use."""
    python = QUIX_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(QUIX_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *QUIX_PACKAGES], check=True)
    return str(python)


def runners(old: Path | None) -> list[Runner]:
    py, quix = sys.executable, quix_python()
    found = [
        Runner(FLOW, [py, "-m", "bytewax.run", "flows.alert"]),
        Runner("flow (-w 2)", [py, "-m", "bytewax.run", "flows.alert", "-w", "2"]),
        Runner(
            "flow (-p 2)",
            [py, "-m", "alarmflow.launch", "flows.alert", "-p", "2", "--base-port", PORT],
        ),
        Runner("plain loop, same functions", [py, "-m", "bench.plain_alert_loop"]),
        Runner("Quix Streams, DLQ branch", [quix, "-m", "bench.quix_alert", "--variant", "branch"]),
        Runner("Quix Streams, one chain", [quix, "-m", "bench.quix_alert", "--variant", "chain"]),
        Runner("limit: orjson + LPUSH", [py, "-m", "bench.limit_pipeline"], checked=False),
    ]
    if old is not None:
        found[1:1] = [
            Runner("old main flow (-p 1)", [py, "-m", "bytewax.run", "flows.alert"], old),
            Runner(
                "old main flow (-w 2)", [py, "-m", "bytewax.run", "flows.alert", "-w", "2"], old
            ),
        ]
    return found


@contextmanager
def services() -> Iterator[tuple[str, str]]:
    """The broker and Redis of a benchmark: those of ``ALARMFLOW_KAFKA_BOOTSTRAP`` and
    ``ALARMFLOW_REDIS_URL``, else its own (the broker with the optimizing compiler, as
    ``scripts/services up --full-jit`` starts it); the broker warmed up either way."""
    if os.environ.get("ALARMFLOW_KAFKA_BOOTSTRAP") and os.environ.get("ALARMFLOW_REDIS_URL"):
        warm_up(os.environ["ALARMFLOW_KAFKA_BOOTSTRAP"])
        yield os.environ["ALARMFLOW_KAFKA_BOOTSTRAP"], os.environ["ALARMFLOW_REDIS_URL"]
        return
    with tempfile.TemporaryDirectory(prefix="alarmflow-bench-") as run_dir:
        kafka = KafkaBroker(free_port(), free_port(), Path(run_dir) / "kafka", full_jit=True)
        redis_server = RedisServer(free_port(), Path(run_dir) / "redis")
        kafka.start()
        redis_server.start()
        try:
            warm_up(kafka.bootstrap)
            yield kafka.bootstrap, redis_server.url(9)
        finally:
            kafka.stop()
            redis_server.stop()


WARM_UP_MESSAGES = 600_000
WARM_UP_RATE = 20_000


def warm_up(bootstrap: str) -> None:
    """Send :data:`WARM_UP_MESSAGES` small messages through the broker at a tailing flow's pace
    (small produce and fetch requests, six partitions each read by its own consumer), so that
    the broker's compiler has compiled that path before anything is timed: a fresh broker with
    the optimizing compiler took 95 % of a core at 19,600 messages/s, the same broker 37 % and
    then 24-26 % in the next runs; after 400,000 messages of warm-up, 58 % and then 25 % (ad
    hoc)."""
    topic = f"warmup{uuid.uuid4().hex[:8]}"
    ensure_topics(bootstrap, [topic], partitions=PARTITIONS)
    consumers = []
    for partition in range(PARTITIONS):
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "alarmflow-bench-warm-up"})
        consumer.assign([TopicPartition(topic, partition, OFFSET_END)])
        consumers.append(consumer)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1})
    started = time.perf_counter()
    for seq in range(WARM_UP_MESSAGES):
        producer.produce(topic, b"%d" % seq, partition=seq % PARTITIONS)
        if seq % 200 == 0:
            producer.poll(0)
            for consumer in consumers:
                consumer.consume(1000, 0)
            while (ahead := started + seq / WARM_UP_RATE - time.perf_counter()) > 0:
                time.sleep(ahead)
    producer.flush(30)
    for consumer in consumers:
        consumer.close()


def alert_environ(bootstrap: str, redis_url: str, topic: str, dlq: str, **extra: str) -> dict:
    """The environment of an alert flow reading ``topic`` from its beginning to its end under a
    fresh key prefix, metrics off; ``extra`` settings win."""
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO),
        ALARMFLOW_KAFKA_BOOTSTRAP=bootstrap,
        ALARMFLOW_REDIS_URL=redis_url,
        ALARMFLOW_KEY_PREFIX=new_prefix(),
        ALARMFLOW_ALERT_TOPICS=topic,
        ALARMFLOW_DLQ_TOPIC=dlq,
        ALARMFLOW_TAIL="0",
        ALARMFLOW_START="earliest",
        ALARMFLOW_METRICS_PORT="0",
    )
    env.update(extra)
    return env


def timed_run(command: list[str], bootstrap: str, redis_url: str, topic: str, dlq: str) -> float:
    """Wall seconds of ``command`` reading ``topic`` to its end (the other flows' benchmarks)."""
    env = alert_environ(bootstrap, redis_url, topic, dlq)
    started = time.perf_counter()
    subprocess.run(command, env=env, cwd=REPO, check=True, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


@dataclass(frozen=True)
class Timing:
    wall_s: float
    cpu_s: float  # user + system of the runner's processes (not the broker's or Redis's)
    broker_s: float = 0.0  # the broker's CPU seconds meanwhile, when measured
    redis_s: float = 0.0  # Redis's CPU seconds meanwhile, when measured


def measured_run(runner: Runner, env: dict[str, str], servers: ServerCpu | None = None) -> Timing:
    """``runner``'s wall and CPU time; with ``servers`` also the broker's and Redis's."""
    env = dict(env, PYTHONPATH=str(runner.checkout))
    command = [str(consecutive_free_ports()) if arg == PORT else arg for arg in runner.command]
    servers_before = servers.read() if servers is not None else (0.0, 0.0)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, env=env, cwd=runner.checkout, check=True, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if servers is None:
        return Timing(wall, cpu)
    (broker, redis_cpu), (broker_before, redis_before) = servers.read(), servers_before
    return Timing(wall, cpu, broker - broker_before, redis_cpu - redis_before)


def check_outputs(all_runners: list[Runner], bootstrap: str, redis_url: str, dlq: str) -> None:
    """Each checked runner on a small topic: its Redis keys and contents equal the flow's
    (lists compared as sorted entries, without the fields that say when a record was handled)."""
    topic = f"bench{uuid.uuid4().hex[:8]}.check"
    ensure_topics(bootstrap, [topic], partitions=PARTITIONS)
    produce(bootstrap, topic, sample_messages(3000, int(time.time()), seed=5))
    client = redis.Redis.from_url(redis_url)
    outputs = {}
    for runner in all_runners:
        if runner.checked:
            prefix = new_prefix()
            env = alert_environ(bootstrap, redis_url, topic, dlq, ALARMFLOW_KEY_PREFIX=prefix)
            measured_run(runner, env)
            outputs[runner.label] = {
                key[len(prefix) :]: entry for key, entry in snapshot(client, prefix).items()
            }
    expected = outputs[FLOW]
    print(f"\noutput check on 3,000 alerts: the flow wrote {len(expected)} keys")
    for label, output in outputs.items():
        verdict = "equal" if output == expected else "DIFFERENT"
        print(f"  {label}: {verdict}")
        if output != expected:
            raise SystemExit(f"{label} wrote different Redis content than the flow")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--old", type=Path, help="a checkout of old main (commit 33cd407)")
    parser.add_argument("--only", nargs="*", help="labels of the runners to time (and the flow)")
    args = parser.parse_args()
    chosen = [
        r for r in runners(args.old) if not args.only or r.label == FLOW or r.label in args.only
    ]
    with services() as (bootstrap, redis_url):
        name = f"bench{uuid.uuid4().hex[:8]}"
        topic, empty, dlq = f"{name}.alert", f"{name}.empty", f"{name}.dlq"
        ensure_topics(bootstrap, [topic, empty, dlq], partitions=PARTITIONS)
        check_outputs(chosen, bootstrap, redis_url, dlq)
        produce(bootstrap, topic, sample_messages(args.alerts, int(time.time())))
        servers = ServerCpu.of(bootstrap, redis_url)
        runs: dict[str, list[Timing]] = {r.label: [] for r in chosen}
        startup: dict[str, list[Timing]] = {r.label: [] for r in chosen}
        for _ in range(args.repeat):
            for runner in chosen:
                runs[runner.label].append(
                    measured_run(runner, alert_environ(bootstrap, redis_url, topic, dlq), servers)
                )
                startup[runner.label].append(
                    measured_run(runner, alert_environ(bootstrap, redis_url, empty, dlq), servers)
                )
    print_table(chosen, runs, startup, args.alerts, args.repeat)


def print_table(
    chosen: list[Runner],
    runs: dict[str, list[Timing]],
    startup: dict[str, list[Timing]],
    alerts: int,
    repeat: int,
    unit: str = "alert",
    flow: str = FLOW,
    partitions: int = PARTITIONS,
) -> None:
    """Median wall and CPU per runner; "net" leaves out the start-up run's; ratios of the
    net rate of the runner labelled ``flow`` to each runner's. ``unit`` names what is counted.
    The broker's and Redis's CPU per unit (net too) are what the runner asked of them: on two
    shared cores it slows the runner as its own CPU does."""
    print(
        f"\n{alerts:,} {unit}s, {partitions} partitions, median of {repeat} alternating runs each\n"
    )
    print(
        f"| runner | wall s (runs) | start-up s | {unit}s/s (wall) | {unit}s/s (net) | flow is "
        f"| CPU µs/{unit} (net) | broker CPU µs/{unit} | Redis CPU µs/{unit} |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")

    def net_us(label: str, field: str) -> float:
        """The median of ``field`` over the runs less its median over the start-up runs, in
        µs per unit."""
        run = statistics.median(getattr(t, field) for t in runs[label])
        start = statistics.median(getattr(t, field) for t in startup[label])
        return (run - start) / alerts * 1e6

    rates = {}
    for runner in chosen:
        wall = statistics.median(t.wall_s for t in runs[runner.label])
        start = statistics.median(t.wall_s for t in startup[runner.label])
        rates[runner.label] = (wall, start, alerts / max(wall - start, 1e-9))
    flow_net = rates[flow][2]
    for runner in chosen:
        wall, start, net = rates[runner.label]
        walls = " / ".join(f"{t.wall_s:.2f}" for t in runs[runner.label])
        cpu = " | ".join(
            f"{net_us(runner.label, field):.0f}" for field in ("cpu_s", "broker_s", "redis_s")
        )
        print(
            f"| {runner.label} | {walls} | {start:.2f} | {alerts / wall:,.0f} | {net:,.0f} "
            f"| {flow_net / net:.2f}x | {cpu} |"
        )
    print_rounds(chosen, runs, startup, flow)


def round_seconds(runs: list[Timing], startup: list[Timing]) -> list[float]:
    """Per round, a runner's net seconds: its run less its start-up run of the same round."""
    return [max(run.wall_s - start.wall_s, 1e-9) for run, start in zip(runs, startup, strict=True)]


def print_rounds(
    chosen: list[Runner], runs: dict[str, list[Timing]], startup: dict[str, list[Timing]], flow: str
) -> None:
    """The flow's net rate against each runner's, round by round: the runs of one round ran
    one after another, so each ratio compares runs under the same conditions of the machine,
    and their spread shows how far one run's ratio can be trusted."""
    flow_s = round_seconds(runs[flow], startup[flow])
    print("\nThe flow is, round by round (net of start-up):\n")
    print("| runner | " + " | ".join(f"round {n + 1}" for n in range(len(flow_s))) + " |")
    print("|---|" + "---:|" * len(flow_s))
    for runner in chosen:
        if runner.label != flow:
            ratios = [
                seconds / own
                for own, seconds in zip(
                    flow_s, round_seconds(runs[runner.label], startup[runner.label]), strict=True
                )
            ]
            print(f"| {runner.label} | " + " | ".join(f"{r:.2f}x" for r in ratios) + " |")


if __name__ == "__main__":
    main()
