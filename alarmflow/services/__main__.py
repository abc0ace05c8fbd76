"""``python -m alarmflow.services up|down|status``: the local services the demo uses."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from alarmflow.kafka_tools import ensure_topics
from alarmflow.services import KafkaBroker, RedisServer, ServiceError

REPO = Path(__file__).resolve().parents[2]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m alarmflow.services")
    parser.add_argument("action", choices=("up", "down", "status"))
    parser.add_argument("--run-dir", type=Path, default=REPO / ".run")
    parser.add_argument(
        "--kafka-port", type=int, default=int(os.environ.get("ALARMFLOW_KAFKA_PORT", 9092))
    )
    parser.add_argument("--kafka-controller-port", type=int, default=9093)
    parser.add_argument(
        "--redis-port", type=int, default=int(os.environ.get("ALARMFLOW_REDIS_PORT", 6379))
    )
    parser.add_argument("--topics", default="", help="comma-separated topics to create (3 parts)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    kafka = KafkaBroker(args.kafka_port, args.kafka_controller_port, args.run_dir / "kafka")
    redis_server = RedisServer(args.redis_port, args.run_dir / "redis")
    services = (("kafka", kafka, kafka.bootstrap), ("redis", redis_server, redis_server.url(9)))
    try:
        for name, service, address in services:
            if args.action == "up":
                service.start()
                print(f"{name:<6} up      {address}   log {service.log_file}")
            elif args.action == "down":
                service.stop()
                print(f"{name:<6} stopped")
            else:
                running = service._process.pid() is not None
                print(f"{name:<6} {'running' if running else 'stopped':<7} {address}")
        topics = [t for t in args.topics.split(",") if t]
        if args.action == "up" and topics:
            ensure_topics(kafka.bootstrap, topics, partitions=3)
            print(f"topics ready: {', '.join(topics)}")
    except ServiceError as exc:
        print(f"alarmflow.services: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
