"""Event access throughput, side by side in one run: today's event flow, old main's event flow
and, for context, the alert flow.

Every runner is a fresh ``python -m bytewax.run`` process (one worker) on the real broker and
Redis, each event runner reading the same topic of ``--messages`` bundled samples (3
partitions, keyed by host as the tests produce them), alternately, ``--repeat`` times; the
table shows the median wall time, messages/s and the ratio of today's flow to each runner. A
run on an empty topic measures each runner's start-up cost (interpreter, imports, Kafka
metadata), and "net" messages/s leaves it out. An event message costs more than an alert: host
lookup, strategy fan-out, md5s and seven writes per anomaly instead of one list push.

    python -m bench.event_throughput [--messages 20000] [--repeat 3] [--old DIR] [--no-alert]

``--old`` is a checkout of old main (``git worktree add /work/wt-old 33cd407``); without it
that runner is left out. Old main's event output differs from today's on purpose (fidelity to
bkmonitor), so only the speed is compared here; ``tests/flows/test_event.py`` proves today's
output equal to main's before the performance work. With ``ALARMFLOW_KAFKA_BOOTSTRAP`` and
``ALARMFLOW_REDIS_URL`` set it uses those services; otherwise it starts its own on free ports
and stops them at the end.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

from alarmflow.event_samples import by_host, sample_events
from alarmflow.kafka_tools import ensure_topics, produce
from alarmflow.samples import sample_messages
from bench.alert_throughput import (
    Runner,
    Timing,
    alert_environ,
    measured_run,
    print_table,
    services,
)
from bench.server_cpu import ServerCpu

PARTITIONS = 3
FLOW = "event flow"
ALERT = "alert flow"


def runners(old: Path | None, alert: bool) -> list[Runner]:
    py = sys.executable
    found = [Runner(FLOW, [py, "-m", "bytewax.run", "flows.event"])]
    if old is not None:
        found.append(Runner("old main event flow", [py, "-m", "bytewax.run", "flows.event"], old))
    if alert:
        found.append(Runner(ALERT, [py, "-m", "bytewax.run", "flows.alert"]))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--old", type=Path, help="a checkout of old main (commit 33cd407)")
    parser.add_argument("--no-alert", action="store_true", help="leave the alert flow out")
    args = parser.parse_args()
    chosen = runners(args.old, not args.no_alert)
    with services() as (bootstrap, redis_url):
        name = f"bench{uuid.uuid4().hex[:8]}"
        events, alerts, empty, dlq = (f"{name}.{t}" for t in ("event", "alert", "empty", "dlq"))
        ensure_topics(bootstrap, [events, alerts, empty, dlq], partitions=PARTITIONS)
        now = int(time.time())
        produce(bootstrap, events, sample_events(args.messages, now), by_host)
        produce(bootstrap, alerts, sample_messages(args.messages, now))

        def environ(runner: Runner, topic: str) -> dict[str, str]:
            if runner.label == ALERT:
                return alert_environ(bootstrap, redis_url, topic, dlq)
            return alert_environ(bootstrap, redis_url, empty, dlq, ALARMFLOW_EVENT_TOPICS=topic)

        servers = ServerCpu.of(bootstrap, redis_url)
        runs: dict[str, list[Timing]] = {r.label: [] for r in chosen}
        startup: dict[str, list[Timing]] = {r.label: [] for r in chosen}
        for _ in range(args.repeat):
            for runner in chosen:
                topic = alerts if runner.label == ALERT else events
                runs[runner.label].append(measured_run(runner, environ(runner, topic), servers))
                startup[runner.label].append(measured_run(runner, environ(runner, empty), servers))
    print_table(chosen, runs, startup, args.messages, args.repeat, "message", FLOW, PARTITIONS)


if __name__ == "__main__":
    main()
