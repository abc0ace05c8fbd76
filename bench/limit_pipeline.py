"""The limit of this stack: Kafka -> orjson -> one pipelined Redis LPUSH per record.

No cleaning, no routing, no dedup: a confluent-kafka consumer reads every partition to its
end, parses each message with orjson (skipping what is not JSON), writes it back with orjson
and LPUSHes it, one redis-py pipeline per batch of up to 1,000. What the alert flow could reach
if its own work cost nothing. Settings from the flow's environment variables.
"""

from __future__ import annotations

import orjson
from confluent_kafka import Consumer

from alarmflow.config import settings_or_exit
from alarmflow.connections import kafka_config, redis_client
from bench.topic_end import TopicEnd

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
            },
        )
    )
    topic = settings.topics_for("alert")[0]
    key = f"{settings.key_prefix}.limit"
    end = TopicEnd(consumer, topic)
    while end.open():
        pipe = client.pipeline(transaction=False)
        for msg in consumer.consume(BATCH, 0.1):
            if msg.error() is not None:
                continue
            end.read(msg)
            try:
                value = orjson.loads(msg.value())
            except orjson.JSONDecodeError:
                continue
            pipe.lpush(key, orjson.dumps(value))
        pipe.execute()
    consumer.close()


if __name__ == "__main__":
    main()
