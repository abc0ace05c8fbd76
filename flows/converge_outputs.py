"""The converge flow's outputs: per batch of decisions its decision and audit messages and its
Redis writes (:func:`outputs`), and the sink that writes them (:class:`OutputsWrites`): one
producer for both topics, the batch's Redis script run while the broker acknowledges."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from bytewax.outputs import StatelessSinkPartition

from alarmflow.config import Settings
from alarmflow.metrics import CONVERGE_DECISIONS
from flows.common import push_sink
from flows.converge_logic import Out, timer_source
from flows.guard import rejection
from flows.kafka_io import DeliveredPartition, DeliveredSink, Message, check_topics
from flows.redis_sink import Routed, routed_size
from flows.write_behind import Size
from operators.converge.audit import audit_record, decision_message
from operators.converge.records import Decision
from operators.json_bytes import json_bytes
from operators.rejects import Reason, Rejected, Rejection
from state.converge_writes import DecisionWrites


@dataclass
class Outcome:
    """What a step of the pipeline made of a batch: decisions and rejections."""

    decisions: list[Decision] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)


def gather(items: list[tuple[str, Out]]) -> list[Outcome]:
    """A stateful step's outputs of one batch (over all its keys), as one :class:`Outcome`."""
    outcome = Outcome()
    for _, item in items:
        if isinstance(item, Decision):
            outcome.decisions.append(item)
        else:
            outcome.rejected.append(item)
    return [outcome]


@dataclass
class Outputs:
    """The messages and Redis writes of a batch of decisions, and the batch's rejections."""

    decisions: list[Message]
    audit: list[Message]
    routed: list[Routed]
    rejected: list[Rejection]


def outputs(prefix: str, flow: str, largest: int) -> Callable[[Outcome], Outputs]:
    """A batch of decisions' messages and writes (the audit record encoded once for its topic
    and Redis), counted per batch. A decision they cannot be made of, or whose decision or
    audit message would be larger than ``largest`` bytes (the producer would refuse it, and
    would refuse it again after every restart), goes to the DLQ, named by its id, and the
    batch goes on."""
    writes = DecisionWrites(prefix)

    def make(outcome: Outcome) -> Outputs:
        made = Outputs([], [], [], list(outcome.rejected))
        counts: Counter[tuple[str, str]] = Counter()
        for decision in outcome.decisions:
            counts[decision.function, decision.decision] += 1
            try:
                record = json_bytes(audit_record(decision))
                message = json_bytes(decision_message(decision))
                _within(max(len(record), len(message)), largest)
                push = writes(decision, record)
            except Exception as exc:
                made.rejected.append(rejection("outputs", exc, timer_source(decision)))
                continue
            made.decisions.append((decision.id, message))
            made.audit.append((decision.id, record))
            made.routed.append(Routed(push, decision.time_ms))
        for (function, verdict), count in counts.items():
            CONVERGE_DECISIONS.labels(flow, function, verdict).inc(count)
        return made

    return make


def _within(size: int, largest: int) -> None:
    if size > largest:
        raise Rejected(
            Reason.TOO_LARGE,
            f"its decision or audit message is {size} bytes, more than the {largest} "
            "a message may have (message.max.bytes)",
        )


class _OutputsPartition(StatelessSinkPartition[Outputs]):
    def __init__(
        self, kafka: DeliveredPartition, redis: StatelessSinkPartition, audit_topic: str
    ) -> None:
        self._kafka = kafka
        self._redis = redis
        self._audit_topic = audit_topic

    def write_batch(self, items: list[Outputs]) -> None:
        self._kafka.send([message for made in items for message in made.decisions])
        self._kafka.send([message for made in items for message in made.audit], self._audit_topic)
        self._redis.write_batch([made.routed for made in items])
        self._kafka.wait()

    def close(self) -> None:
        self._kafka.close()
        self._redis.close()


class OutputsWrites:
    """The writes of batches of outputs: the decision and audit messages (one producer for
    both topics) and the Redis writes, made while the broker acknowledges the messages; a
    batch is written once Kafka and Redis both acknowledged it."""

    def __init__(self, settings: Settings, flow: str) -> None:
        self._settings = settings
        self._kafka = DeliveredSink(settings, settings.decision_topic, flow, "kafka")
        self._redis = push_sink(settings, flow, "converge", batched=True)

    def partition(self, step_id: str) -> _OutputsPartition:
        audit_topic = self._settings.audit_topic
        check_topics(self._settings, [audit_topic])
        return _OutputsPartition(
            self._kafka.partition(), self._redis.partition(f"{step_id}_redis"), audit_topic
        )


def size(outputs: list[Outputs]) -> Size:
    """What a list of outputs counts for in a writer's queue: each batch and its decisions, and
    the bytes of their messages and Redis values."""
    records = sum(1 + len(made.routed) for made in outputs)
    messages = sum(len(value) for made in outputs for _, value in (*made.decisions, *made.audit))
    routed = [one for made in outputs for one in made.routed]
    return Size(records, messages + routed_size(routed).bytes)
