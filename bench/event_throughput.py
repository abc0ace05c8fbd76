"""Event access throughput against alert access on the same number of messages.

Both flows run as fresh ``python -m bytewax.run`` processes (one worker) on the real broker
and Redis, each on its own topic of ``--messages`` bundled samples (3 partitions),
alternating, ``--repeat`` times each; the table shows the wall times, the median
messages/s and the ratio event / alert. An event message costs more than an alert: host
lookup, strategy fan-out, md5s and six writes per anomaly instead of one list push.

    python -m bench.event_throughput [--messages 20000] [--repeat 3]

With ``ALARMFLOW_KAFKA_BOOTSTRAP`` and ``ALARMFLOW_REDIS_URL`` set it uses those services;
otherwise it starts its own on free ports and stops them at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid

from alarmflow.event_samples import sample_events
from alarmflow.kafka_tools import ensure_topics, produce
from alarmflow.samples import sample_messages
from bench.alert_throughput import services, timed_run

FLOWS = {"alert": sample_messages, "event": sample_events}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    walls: dict[str, list[float]] = {flow: [] for flow in FLOWS}
    with services() as (bootstrap, redis_url):
        name = f"bench{uuid.uuid4().hex[:8]}"
        topics = {flow: f"{name}.{flow}" for flow in FLOWS}
        dlq = f"{name}.dlq"
        ensure_topics(bootstrap, [*topics.values(), dlq], partitions=3)
        now = int(time.time())
        for flow, samples in FLOWS.items():
            produce(bootstrap, topics[flow], samples(args.messages, now))
        # timed_run sets the alert topic; the event flow reads its own setting.
        os.environ["ALARMFLOW_EVENT_TOPICS"] = topics["event"]
        for _ in range(args.repeat):
            for flow, topic in topics.items():
                command = [sys.executable, "-m", "bytewax.run", f"flows.{flow}"]
                walls[flow].append(timed_run(command, bootstrap, redis_url, topic, dlq))
    print(f"\n{args.messages} messages each, 3 partitions, median of {args.repeat} runs\n")
    print("| flow | wall s (runs) | messages/s (median wall) |")
    print("|---|---|---:|")
    rates = {}
    for flow, runs in walls.items():
        rates[flow] = args.messages / statistics.median(runs)
        print(f"| {flow} | {' / '.join(f'{w:.2f}' for w in runs)} | {rates[flow]:,.0f} |")
    print(f"\nratio event / alert (messages/s): {rates['event'] / rates['alert']:.2f}")


if __name__ == "__main__":
    main()
