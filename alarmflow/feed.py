"""Feed sample alerts to a topic at a steady rate, so a fresh deployment shows live data.

``python -m alarmflow.feed --rate 50`` (docker-compose's ``feed`` service) creates the input
topics of every access type and the output topics (dead letters, converge decisions and audit)
if needed, and produces sample alerts forever (``--seconds`` to stop).
"""

from __future__ import annotations

import argparse
import time

from alarmflow.config import ACCESS_TYPES, settings_or_exit
from alarmflow.connections import check_kafka, reachable_or_exit
from alarmflow.kafka_tools import ensure_topics, produce
from alarmflow.samples import sample_messages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=50, help="alerts per second (50)")
    parser.add_argument("--seconds", type=float, default=0, help="stop after this long (0: never)")
    args = parser.parse_args(argv)
    settings = settings_or_exit()
    reachable_or_exit("alarmflow.feed", lambda: check_kafka(settings))
    topic = settings.topics_for("alert")[0]
    inputs = [topic for kind in ACCESS_TYPES for topic in settings.topics_for(kind)]
    outputs = [settings.dlq_topic, settings.decision_topic, settings.audit_topic]
    reachable_or_exit(
        "alarmflow.feed", lambda: ensure_topics(settings, [*inputs, *outputs], partitions=3)
    )
    started = time.monotonic()
    seed = 0
    while not args.seconds or time.monotonic() - started < args.seconds:
        seed += 1
        produce(settings, topic, sample_messages(args.rate, int(time.time()), seed))
        time.sleep(1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
