"""A reliable Kafka output: produce keyed messages and wait for every delivery report.

A failed or missing delivery stops the flow (recovery then replays the batch), as
:class:`flows.kafka_io.DeadLetterSink` does for rejections; Bytewax's ``KafkaSink`` would drop it.
"""

from __future__ import annotations

import logging

from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import Producer

from alarmflow.metrics import Stage
from flows.kafka_io import DELIVERY_TIMEOUT_S, check_topics

log = logging.getLogger(__name__)

Message = tuple[str, bytes]
"""A message key and value."""


class _DeliveredPartition(StatelessSinkPartition[Message]):
    def __init__(self, producer: Producer, topic: str, flow: str, stage: str) -> None:
        self._producer = producer
        self._topic = topic
        self._flow = flow
        self._stage = Stage(flow, stage)

    def write_batch(self, items: list[Message]) -> None:
        with self._stage.batch(len(items)):
            failures: list[str] = []

            def on_delivery(err, _msg) -> None:
                if err is not None:
                    failures.append(str(err))

            for key, value in items:
                self._producer.produce(self._topic, value, key=key, on_delivery=on_delivery)
            pending = self._producer.flush(DELIVERY_TIMEOUT_S)
        if failures or pending:
            message = f"topic {self._topic}: {pending} undelivered, errors: {failures[:3]}"
            log.error("%s: %s; stopping so that recovery replays them", self._flow, message)
            raise RuntimeError(message)

    def close(self) -> None:
        self._producer.flush(DELIVERY_TIMEOUT_S)


class DeliveredSink(DynamicSink[Message]):
    """Produces ``(key, value)`` messages to ``topic``; every delivery is confirmed."""

    def __init__(self, bootstrap: str, topic: str, flow: str, stage: str) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._flow = flow
        self._stage = stage

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _DeliveredPartition:
        check_topics(self._bootstrap, [self._topic])
        producer = Producer(
            {
                "bootstrap.servers": self._bootstrap,
                "message.timeout.ms": int(DELIVERY_TIMEOUT_S * 1000),
                "acks": "all",
                "enable.idempotence": True,
            }
        )
        return _DeliveredPartition(producer, self._topic, self._flow, self._stage)
