"""The baseline for ``bench/alert_throughput.py``: the alert flow's work without Bytewax.

A plain confluent-kafka consumer reads every partition to its end; each batch goes through
the same decode, clean, expiry and routing functions and the same idempotent Redis pushes
(one pipeline per batch); rejects go to the dead-letter topic. Settings come from the same
environment variables as the flow.
"""

from __future__ import annotations

import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from alarmflow.config import settings_or_exit
from alarmflow.connections import kafka_config, redis_client
from flows.common import load_strategies
from operators.alert import clean_alert, is_expired
from operators.rejects import Rejected, Rejection, SourceRecord, decode_object
from operators.routing import AlertRouter
from state.idempotent import OncePusher
from state.writes import alert_push

BATCH = 1000


def main() -> None:
    settings = settings_or_exit()
    router = AlertRouter(load_strategies(settings))
    pusher = OncePusher(redis_client(settings.redis_url, settings), settings.redis_dbs())
    consumer = Consumer(
        kafka_config(
            settings,
            {
                "group.id": "alarmflow-bench-baseline",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
            },
        )
    )
    dead_letters = Producer(kafka_config(settings, {"acks": "all"}))
    topic = settings.topics_for("alert")[0]
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    open_parts = set(partitions)
    while open_parts:
        pushes = []
        for msg in consumer.consume(BATCH, 0.1):
            if msg.error() is not None:
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    open_parts.discard(msg.partition())
                continue
            record = SourceRecord(msg.topic(), msg.partition(), msg.offset(), msg.value())
            try:
                event = clean_alert(decode_object(record, settings.max_message_bytes), time.time())
            except Rejected as exc:
                rejection = Rejection(exc.reason, exc.error, record)
                dead_letters.produce(settings.dlq_topic, rejection.to_dlq("alert"))
                continue
            if is_expired(event, time.time()):
                continue
            targets = router.route(event)
            if targets:
                pushes.append(alert_push(settings.key_prefix, event, targets, settings.dedup_ttl))
        pusher.push(pushes)
        dead_letters.flush(30)
    consumer.close()


if __name__ == "__main__":
    main()
