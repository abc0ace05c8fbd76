"""The README's main job: sample alerts (or events) through their flow, then what landed.

Produces bundled sample alerts (``--flow alert``, the default) or GSE events (``--flow
event``) to a demo topic (recreated each run), runs ``python -m bytewax.run flows.<flow>``
until the topic is drained (``ALARMFLOW_TAIL=0``) and prints the report of
:mod:`alarmflow.report`. Uses the services of ``scripts/services up``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from confluent_kafka.admin import AdminClient

from alarmflow.config import Settings, settings_or_exit
from alarmflow.connections import kafka_config, preflight, reachable_or_exit, redis_client
from alarmflow.event_samples import sample_events
from alarmflow.kafka_tools import ensure_topics, produce
from alarmflow.report import print_report
from alarmflow.samples import sample_messages
from state.keys import prefix_pattern

REPO = Path(__file__).resolve().parents[1]
DEMO_TOPICS = {"alert": "alarmflow.demo.alert", "event": "alarmflow.demo.event"}
SAMPLES = {"alert": sample_messages, "event": sample_events}
DEMO_DLQ = "alarmflow.demo.dlq"
DEMO_PREFIX = "bk_bkmonitorv3.ee[demo]"


def recreate_topics(settings: Settings, topics: list[str]) -> None:
    admin = AdminClient(kafka_config(settings))
    existing = [t for t in topics if t in admin.list_topics(timeout=10).topics]
    for future in admin.delete_topics(existing, operation_timeout=30).values() if existing else ():
        future.result()
    deadline = time.monotonic() + 30
    while set(existing) & set(admin.list_topics(timeout=10).topics):
        if time.monotonic() > deadline:
            raise RuntimeError(f"topics {existing} were not deleted within 30 s")
        time.sleep(0.2)
    ensure_topics(settings, topics, partitions=3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flow", choices=sorted(DEMO_TOPICS), default="alert")
    parser.add_argument("--alerts", type=int, default=5000, help="sample messages to send (5000)")
    args = parser.parse_args(argv)
    topic = DEMO_TOPICS[args.flow]
    env = dict(
        os.environ,
        **{f"ALARMFLOW_{args.flow.upper()}_TOPICS": topic},
        ALARMFLOW_DLQ_TOPIC=DEMO_DLQ,
        ALARMFLOW_KEY_PREFIX=os.environ.get("ALARMFLOW_KEY_PREFIX", DEMO_PREFIX),
        ALARMFLOW_TAIL="0",
        ALARMFLOW_START="earliest",
    )
    settings = settings_or_exit(env)
    reachable_or_exit("alarmflow.demo", lambda: preflight(settings))
    recreate_topics(settings, [topic, DEMO_DLQ])
    for url in (settings.redis_url, settings.redis_service_url):
        client = redis_client(url, settings)
        stale = list(client.scan_iter(match=prefix_pattern(settings.key_prefix), count=1000))
        if stale:
            client.delete(*stale)
    samples = SAMPLES[args.flow](args.alerts, int(time.time()))
    sent = produce(settings, topic, samples)
    module = f"flows.{args.flow}"
    print(f"sent {sent} sample {args.flow}s to {topic}; running python -m bytewax.run {module}")
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "bytewax.run", module],
        env=env,
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
    )
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
        return done.returncode
    print(f"flow drained the topic and stopped after {time.perf_counter() - started:.1f}s")
    for line in done.stderr.splitlines():
        if "end of input: " in line:
            print("  counts " + line.split("end of input: ", 1)[1])
    print()
    print_report(settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
