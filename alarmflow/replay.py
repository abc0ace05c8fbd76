"""Replay or backfill: re-run a flow over its topics from an offset or a time, into a separate
key prefix, with a progress bar and a summary.

    python -m alarmflow.replay flows.alert --prefix 'bk_bkmonitorv3.ee[replay]' \
        --from-time 2026-11-23T08:00:00Z

The flow runs as ``python -m bytewax.run`` with ``ALARMFLOW_START`` set to the position,
``ALARMFLOW_TAIL=0`` (stop at the end of every partition) and no recovery, so it never moves
the live flow's offsets; the prefix must differ from the live one, and a converge replay
sends its decisions and audit records to topics of its own (``--decision-topic``,
``--audit-topic``), never to those the live flow feeds. The bar follows the flow's metrics;
its last state, and the summary, are the counts the flow itself logs at the end.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections import deque
from pathlib import Path
from typing import TextIO

from confluent_kafka import Consumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from alarmflow.config import Settings, settings_or_exit
from alarmflow.connections import (
    access_type,
    flow_topics,
    kafka_config,
    preflight,
    reachable_or_exit,
)
from alarmflow.run_access import ACCESS_FLOWS
from alarmflow.services import free_port
from flows.kafka_io import offset_at

REPO = Path(__file__).resolve().parents[1]
BAR_WIDTH = 30
TAIL_LINES = 60
LAST_OFFSET = 2**63 - 1
"""The highest offset Kafka has (a signed 64-bit number)."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m alarmflow.replay", description=__doc__)
    parser.add_argument(
        "flow", choices=sorted(ACCESS_FLOWS.values()), metavar="flow", help="one of %(choices)s"
    )
    parser.add_argument("--prefix", required=True, help="key prefix to write under")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--from-offset", type=int, help="start every partition at this offset")
    where.add_argument(
        "--from-time", help="start at this time: epoch seconds or ISO-8601 with zone"
    )
    where.add_argument("--from-beginning", action="store_true", help="start at the beginning")
    parser.add_argument(
        "--decision-topic", help="converge: topic for the replayed decisions (not the live one)"
    )
    parser.add_argument(
        "--audit-topic", help="converge: topic for the replayed audit records (not the live one)"
    )
    args = parser.parse_args(argv)
    if args.from_offset is not None and not 0 <= args.from_offset <= LAST_OFFSET:
        parser.error(f"--from-offset must be an offset from 0 to {LAST_OFFSET}")
    return args


def refusal(args: argparse.Namespace, live: Settings) -> str | None:
    """Why the replay would write over the live flow's output, or ``None``."""
    if args.prefix == live.key_prefix:
        return f"--prefix must differ from the live prefix {live.key_prefix}"
    if access_type(args.flow) == "action":
        for option, chosen, topic in (
            ("--decision-topic", args.decision_topic, live.decision_topic),
            ("--audit-topic", args.audit_topic, live.audit_topic),
        ):
            if chosen in (None, topic):
                return f"{option} must name a topic other than the live {topic}"
    return None


def start_value(args: argparse.Namespace) -> str:
    if args.from_beginning:
        return "earliest"
    if args.from_offset is not None:
        return f"offset:{args.from_offset}"
    return f"time:{args.from_time}"


def first_offset(settings: Settings, topic: str, partition: int, end: int) -> int:
    """Where the replay starts reading ``partition`` (``end`` when it reads nothing)."""
    if settings.start.kind == "offset":
        return settings.start.value
    if settings.start.kind == "time":
        found = offset_at(settings, topic, partition, settings.start.value)
        return found if found >= 0 else end
    return 0


def messages_to_read(settings: Settings, topics: tuple[str, ...]) -> int:
    """How many messages lie between the start position and the current end of each partition."""
    consumer = Consumer(kafka_config(settings, {"group.id": "alarmflow-replay"}))
    total = 0
    try:
        for topic in topics:
            for partition in consumer.list_topics(topic, timeout=10).topics[topic].partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), 10)
                total += max(0, high - max(low, first_offset(settings, topic, partition, high)))
    finally:
        consumer.close()
    return total


def consumed(port: int) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return 0.0
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "alarmflow_consumed_total"
    )


def draw(done: float, total: int, started: float) -> None:
    share = min(1.0, done / total) if total else 1.0
    filled = int(share * BAR_WIDTH)
    rate = done / max(time.monotonic() - started, 1e-9)
    sys.stderr.write(
        f"\r[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {share:4.0%} "
        f"{done:,.0f}/{total:,} messages, {rate:,.0f}/s"
    )
    sys.stderr.flush()


class FlowLog:
    """Reads the flow's log as it is written (a pipe the flow would otherwise block on once
    full), keeping its last :data:`TAIL_LINES` lines and its end-of-input summaries."""

    def __init__(self, stream: TextIO) -> None:
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.summary: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: TextIO) -> None:
        for line in stream:
            line = line.rstrip("\n")
            self.tail.append(line)
            if "end of input: " in line:
                self.summary.append(line.split("end of input: ", 1)[1])

    def join(self) -> None:
        self._thread.join()


def consumed_in(summary: list[str]) -> int:
    """The messages the flow says it consumed, from its end-of-input summaries."""
    return sum(int(n) for line in summary for n in re.findall(r"\bconsumed\[[^\]]*\]=(\d+)", line))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    live = settings_or_exit()
    refused = refusal(args, live)
    if refused is not None:
        print(f"alarmflow.replay: {refused}", file=sys.stderr)
        return 2
    port = free_port()
    env = dict(
        os.environ,
        ALARMFLOW_START=start_value(args),
        ALARMFLOW_TAIL="0",
        ALARMFLOW_KEY_PREFIX=args.prefix,
        ALARMFLOW_METRICS_PORT=str(port),
    )
    if args.decision_topic is not None:
        env["ALARMFLOW_DECISION_TOPIC"] = args.decision_topic
    if args.audit_topic is not None:
        env["ALARMFLOW_AUDIT_TOPIC"] = args.audit_topic
    env.pop("BYTEWAX_PROCESS_ID", None)
    settings = settings_or_exit(env)
    reachable_or_exit(
        "alarmflow.replay", lambda: preflight(settings, flow_topics(settings, args.flow))
    )
    topics = settings.topics_for(access_type(args.flow))
    total = messages_to_read(settings, topics)
    print(
        f"replaying {total:,} messages of {', '.join(topics)} into prefix {args.prefix}",
        file=sys.stderr,
    )
    started = time.monotonic()
    with subprocess.Popen(
        [sys.executable, "-m", "bytewax.run", args.flow],
        env=env,
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
    ) as proc:
        log = FlowLog(proc.stderr)
        while proc.poll() is None:
            draw(consumed(port), total, started)
            time.sleep(0.5)
        log.join()
    draw(consumed_in(log.summary), total, started)
    sys.stderr.write("\n")
    if proc.returncode != 0:
        print("\n".join(log.tail), file=sys.stderr)
        return proc.returncode
    print(f"done in {time.monotonic() - started:.1f}s: " + "; ".join(log.summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
