"""A peer of the alert flow without a stream framework: a plain confluent-kafka + redis-py loop.

A consumer reads every partition to its end; each batch of up to 1,000 messages goes through
the flow's own per-batch work (``operators.alert_access.AlertAccess``) and the same push-once
script (one call per batch); rejects go to the dead-letter topic. Settings come from the same
environment variables as the flow.
"""

from __future__ import annotations

import time

from confluent_kafka import Consumer, Producer

from alarmflow.config import settings_or_exit
from alarmflow.connections import kafka_config, redis_client
from bench.topic_end import TopicEnd
from operators.alert_access import AlertAccess
from operators.rejects import SourceRecord
from operators.strategy import load_strategy_file
from state.idempotent import OncePusher

BATCH = 1000


def main() -> None:
    settings = settings_or_exit()
    access = AlertAccess.from_settings(settings, load_strategy_file(settings.strategies))
    pusher = OncePusher(redis_client(settings.redis_url, settings), settings.redis_dbs())
    consumer = Consumer(
        kafka_config(
            settings,
            {
                "group.id": "alarmflow-bench-baseline",
                "enable.auto.commit": False,
            },
        )
    )
    dead_letters = Producer(kafka_config(settings, {"acks": "all"}))
    topic = settings.topics_for("alert")[0]
    end = TopicEnd(consumer, topic)
    while end.open():
        records = []
        for msg in consumer.consume(BATCH, 0.1):
            if msg.error() is not None:
                continue
            end.read(msg)
            ts = msg.timestamp()[1]
            records.append(
                SourceRecord(msg.topic(), msg.partition(), msg.offset(), msg.value(), ts)
            )
        out = access(records, time.time())
        pusher.push([push for push, _ in out.pushes])
        for rejection in out.rejected:
            dead_letters.produce(settings.dlq_topic, rejection.to_dlq("alert"))
        dead_letters.flush(30)
    consumer.close()


if __name__ == "__main__":
    main()
