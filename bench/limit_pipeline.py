"""The limit of this stack: Kafka -> orjson -> one pipelined Redis LPUSH per record.

No cleaning, no routing, no dedup: a confluent-kafka consumer reads every partition to its
end, parses each message with orjson (skipping what is not JSON), writes it back with orjson
and LPUSHes it, one redis-py pipeline per batch of up to 1,000. What the alert flow could reach
if its own work cost nothing. Settings from the flow's environment variables.
"""

from __future__ import annotations

import orjson
from confluent_kafka import Consumer, KafkaError, TopicPartition

from alarmflow.config import settings_or_exit
from alarmflow.connections import kafka_config, redis_client

BATCH = 1000


def main() -> None:
    settings = settings_or_exit()
    client = redis_client(settings.redis_url, settings)
    consumer = Consumer(
        kafka_config(
            settings,
            {
                "group.id": "alarmflow-bench-limit",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "fetch.wait.max.ms": 10,  # its end seen from an empty fetch, within 10 ms
            },
        )
    )
    topic = settings.topics_for("alert")[0]
    key = f"{settings.key_prefix}.limit"
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    open_parts = set(partitions)
    while open_parts:
        pipe = client.pipeline(transaction=False)
        for msg in consumer.consume(BATCH, 0.1):
            if msg.error() is not None:
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    open_parts.discard(msg.partition())
                continue
            try:
                value = orjson.loads(msg.value())
            except orjson.JSONDecodeError:
                continue
            pipe.lpush(key, orjson.dumps(value))
        pipe.execute()
    consumer.close()


if __name__ == "__main__":
    main()
