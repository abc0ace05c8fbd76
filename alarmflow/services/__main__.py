"""``python -m alarmflow.services up|down|status``: the local Kafka and Redis the demo uses."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from confluent_kafka import KafkaException

from alarmflow.services import KafkaBroker, RedisServer, ServiceError

REPO = Path(__file__).resolve().parents[2]


class Service(Protocol):
    """What ``KafkaBroker`` and ``RedisServer`` have in common."""

    @property
    def log_file(self) -> Path: ...

    def running(self) -> bool: ...

    def answers(self) -> bool: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass(frozen=True)
class Entry:
    """A service as the command shows it."""

    name: str
    service: Service
    address: str


def port(text: str) -> int:
    """A TCP port option's value, 1 to 65535; anything else is a usage error."""
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"expected a port from 1 to 65535, not {text!r}")
    return int(text)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m alarmflow.services", description=__doc__)
    parser.add_argument("action", choices=("up", "down", "status"))
    parser.add_argument("--run-dir", type=Path, default=REPO / ".run")
    # String defaults go through type=port too, so a bad ALARMFLOW_*_PORT is a usage error.
    kafka_port = os.environ.get("ALARMFLOW_KAFKA_PORT", "9092")
    redis_port = os.environ.get("ALARMFLOW_REDIS_PORT", "6379")
    parser.add_argument("--kafka-port", type=port, default=kafka_port)
    parser.add_argument("--kafka-controller-port", type=port, default="9093")
    parser.add_argument("--redis-port", type=port, default=redis_port)
    parser.add_argument("--topics", default="", help="comma-separated topics to create (3 parts)")
    parser.add_argument("--no-kafka", action="store_true", help="leave Kafka alone")
    parser.add_argument("--no-redis", action="store_true", help="leave Redis alone")
    parser.add_argument(
        "--full-jit",
        action="store_true",
        help="run the broker with the JVM's optimizing compiler, as for benchmarks",
    )
    args = parser.parse_args(argv)
    if args.topics and args.no_kafka:
        parser.error("--topics needs Kafka: drop --no-kafka")
    return args


def up(entry: Entry) -> str:
    state = "already running" if entry.service.running() else "started"
    entry.service.start()
    return f"{state:<15} {entry.address}  log {entry.service.log_file}"


def down(entry: Entry) -> str:
    state = "stopped" if entry.service.running() else "not running"
    entry.service.stop()
    return state


def status(entry: Entry) -> str:
    if not entry.service.running():
        return f"{'stopped':<15} {entry.address}"
    state = "running" if _answers(entry.service) else "not answering"
    return f"{state:<15} {entry.address}  log {entry.service.log_file}"


def _answers(service: Service) -> bool:
    try:
        return service.answers()
    except Exception:  # a client error means it does not answer
        return False


ACTIONS = {"up": up, "down": down, "status": status}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    kafka = KafkaBroker(
        args.kafka_port, args.kafka_controller_port, args.run_dir / "kafka", full_jit=args.full_jit
    )
    redis_server = RedisServer(args.redis_port, args.run_dir / "redis")
    chosen = [
        *([] if args.no_kafka else [Entry("kafka", kafka, kafka.bootstrap)]),
        *([] if args.no_redis else [Entry("redis", redis_server, redis_server.url())]),
    ]
    topics = [topic for topic in args.topics.split(",") if topic]
    try:
        for entry in chosen:
            print(f"{entry.name:<6} {ACTIONS[args.action](entry)}", flush=True)
        if args.action == "up" and topics:
            kafka.create_topics(topics, partitions=3)
            print(f"topics ready: {', '.join(topics)}")
    except (ServiceError, KafkaException) as exc:
        print(f"alarmflow.services: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
