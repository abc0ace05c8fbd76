"""Small Kafka helpers for the demo, the benchmark and the tests: produce, read back, topics."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from alarmflow.connections import ConnectFailed, KafkaTarget, bootstrap_of, kafka_config


def ensure_topics(target: KafkaTarget, topics: Iterable[str], partitions: int = 3) -> None:
    """Create the topics that do not exist yet (``partitions`` each) and wait for them; raise
    :class:`ConnectFailed` for a topic Kafka refuses to create (an invalid name, no right)."""
    admin = AdminClient(kafka_config(target))
    existing = admin.list_topics(timeout=10).topics
    wanted = [NewTopic(t, partitions, 1) for t in topics if t not in existing]
    created = admin.create_topics(wanted, operation_timeout=30) if wanted else {}
    for topic, future in created.items():
        try:
            future.result()
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                where = f"Kafka at {bootstrap_of(target)}"
                refusal = exc.args[0].str()
                raise ConnectFailed(f"{where}: topic {topic!r} not created: {refusal}") from None


def produce(
    target: KafkaTarget,
    topic: str,
    messages: Iterable[bytes],
    key: Callable[[bytes], bytes] | None = None,
) -> int:
    """Produce ``messages`` in order, partitioned by ``key(message)`` (default: spread by
    position); return how many."""
    producer = Producer(
        kafka_config(
            target,
            {
                "linger.ms": 20,
                "message.max.bytes": 8 << 20,
                # A retried batch must not land after a later one: per-key order is the contract.
                "enable.idempotence": True,
            },
        )
    )
    count = 0
    for count, message in enumerate(messages, start=1):
        message_key = str(count).encode() if key is None else key(message)
        while True:
            try:
                producer.produce(topic, message, key=message_key)
                break
            except BufferError:
                producer.poll(0.1)
    if producer.flush(60):
        raise RuntimeError(f"{topic}: not every message was delivered")
    return count


def read_all(target: KafkaTarget, topic: str, timeout: float = 10.0) -> list[bytes]:
    """Every message now in ``topic``, read from the beginning to the end offsets."""
    consumer = Consumer(
        kafka_config(target, {"group.id": "alarmflow-read-all", "enable.auto.commit": False})
    )
    try:
        metadata = consumer.list_topics(topic, timeout=timeout).topics[topic]
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1]
            for p in metadata.partitions
        }
        consumer.assign([TopicPartition(topic, p, 0) for p, end in ends.items() if end > 0])
        remaining = sum(ends.values())
        out: list[bytes] = []
        while remaining > 0:
            msg = consumer.poll(timeout)
            if msg is None:
                raise TimeoutError(f"{topic}: {remaining} messages not read within {timeout}s")
            if msg.error() is None and msg.offset() < ends[msg.partition()]:
                out.append(msg.value())
                remaining -= 1
        return out
    finally:
        consumer.close()
