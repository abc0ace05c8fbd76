"""A benchmark peer's consumer reading a topic to its end as the flows' partitions do: each
partition ends once its next offset reaches its high watermark, as the broker gave it in the
last fetch response (``flows.kafka_io._RecordBatches``). An end-of-partition event would come
only from a later fetch that found nothing, which the broker holds for ``fetch.wait.max.ms``;
a short wait for it makes a consumer fetched to the end poll the broker many times a second."""

from __future__ import annotations

from confluent_kafka import Consumer, Message, TopicPartition


class TopicEnd:
    """``consumer`` assigned every partition of ``topic`` from its first offset; :meth:`read`
    takes note of each message, :meth:`open` says whether a partition is still short of its
    end."""

    def __init__(self, consumer: Consumer, topic: str) -> None:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        self._consumer = consumer
        self._parts = {p: TopicPartition(topic, p) for p in partitions}
        self._next = dict.fromkeys(partitions, 0)
        # Asked before the assignment starts fetches, which the broker holds on an empty
        # partition for fetch.wait.max.ms, with this request queued behind them.
        self._open = {p for p in partitions if self._high(p, cached=False) > 0}
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])

    def _high(self, partition: int, cached: bool) -> int:
        return self._consumer.get_watermark_offsets(
            self._parts[partition], timeout=10, cached=cached
        )[1]

    def read(self, msg: Message) -> None:
        self._next[msg.partition()] = msg.offset() + 1

    def open(self) -> bool:
        for partition in list(self._open):
            if 0 <= self._high(partition, cached=True) <= self._next[partition]:
                self._open.discard(partition)
        return bool(self._open)
