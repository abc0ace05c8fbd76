"""Kafka in and out for every flow: Bytewax adapters, no business logic.

- :func:`kafka_batches` reads the configured topics (:class:`CheckedKafkaSource`, a consumer
  per partition, offsets in the recovery store) a poll at a time: each partition hands on the
  list of records of each poll as one item, built straight from librdkafka's messages, with a
  rejection in place of each message the consumer could not read. It checks the broker and
  topics first with a timeout (Bytewax's own Kafka source hangs forever on an unreachable
  broker) and counts what it reads. :func:`kafka_records` hands the same on a record at a
  time, for a flow whose steps take one. :class:`LocalParts` tells a later step which
  partitions its worker reads.
- :class:`DeliveredSink` produces messages (the dead-letter topic's, converge decisions and
  audit records) and waits until the broker has taken every message (only a failure is
  reported to Python): a failed delivery stops the flow (recovery then replays), it is never
  dropped silently as Bytewax's ``KafkaSink`` would.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaException,
    Producer,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka import KafkaError as ConfluentKafkaError
from confluent_kafka import Message as ConfluentMessage
from confluent_kafka.admin import AdminClient
from prometheus_client import Counter, Gauge

from alarmflow.config import Settings, StartPosition
from alarmflow.connections import (
    KafkaTarget,
    bootstrap_of,
    delivery_properties,
    delivery_timeout_s,
    kafka_config,
)
from alarmflow.logs import RateLimited
from alarmflow.metrics import CONSUMED, CONSUMER_LAG, INPUT_MISSING, REJECTED, Stage
from flows import input_end
from operators.json_bytes import json_bytes
from operators.rejects import Reason, Rejection, SourceRecord

log = logging.getLogger(__name__)

PREFLIGHT_TIMEOUT_S = 10.0
BATCH_SIZE = 1000
"""The most messages one poll of a partition takes (Bytewax's Kafka source's default)."""
POLL_TIMEOUT_S = 0.0
"""How long a partition's poll waits for messages: none. A poll takes what librdkafka has
fetched, and Bytewax waits 1 ms before polling a partition whose poll found nothing. Bytewax's
own Kafka partitions wait up to 1 ms in each poll, which a worker pays once per partition in
each round of polls: up to 6 ms with six partitions, the most of a tailing alert flow's
latency (``bench.alert_latency``)."""
PRODUCER_MESSAGE_MAX_BYTES = 1_000_000
"""librdkafka's default ``message.max.bytes``: a producer refuses a larger message outright."""
MESSAGE_FRAMING_BYTES = 1024
"""Room a message's value leaves under ``message.max.bytes`` for its key and framing."""
SOURCE_PROPERTIES = ("group.id", "enable.auto.commit", "enable.partition.eof", "auto.offset.reset")
"""The source's consumers set these themselves (offsets live in the recovery store; a run that
ends at the end of its input needs the end-of-partition events): ``ALARMFLOW_KAFKA_CONFIG``
does not change them."""
OFFSET_RESET = {"auto.offset.reset": "earliest"}
"""Where a consumer goes on from an offset the broker no longer has (retention deleted the
records up to past a recovered offset): the first offset it still has. librdkafka's default,
the end, skipped every record left between them."""

Input = SourceRecord | Rejection
"""A message read, or the rejection of one the consumer could not read."""


class BrokerUnavailable(RuntimeError):
    """The broker did not answer, or an input topic does not exist."""


_SEEN_TOPICS: dict[tuple[str, ...], dict[str, tuple[int, ...]]] = {}
"""The topics this process saw on each broker (by bootstrap servers and client identity), and
their partitions: a flow checks its topics and lists their partitions as its source and sinks
are built, and only the first check, or one naming a topic not seen yet, asks the broker. A
topic deleted after it was seen is found, as it would be after any check, by the reads or
deliveries that then fail (and by :class:`TopicWatch`); partitions added to a topic are read
from the flow's next start, as they were."""


def _partitions(
    target: KafkaTarget, topics: list[str], timeout: float = PREFLIGHT_TIMEOUT_S
) -> dict[str, tuple[int, ...]]:
    """The partitions of each of ``topics``; :class:`BrokerUnavailable` unless the broker
    answers and every topic exists with no error (a topic whose leaders are still being
    elected, say)."""
    bootstrap = bootstrap_of(target)
    seen = _SEEN_TOPICS.setdefault(_identity(target), {})
    if any(topic not in seen for topic in topics):
        admin = AdminClient(kafka_config(target))
        try:
            metadata = admin.list_topics(timeout=timeout)
        except Exception as exc:
            raise BrokerUnavailable(
                f"Kafka at {bootstrap} did not answer within {timeout:.0f}s: {exc}"
            ) from None
        errors = {
            name: found.error for name, found in metadata.topics.items() if found.error is not None
        }
        seen.update(
            (name, tuple(found.partitions))
            for name, found in metadata.topics.items()
            if found.error is None
        )
        missing = [
            f"{topic} ({errors[topic].str()})" if topic in errors else topic
            for topic in topics
            if topic not in seen
        ]
        if missing:
            raise BrokerUnavailable(f"topics missing on Kafka at {bootstrap}: {', '.join(missing)}")
    return {topic: seen[topic] for topic in topics}


def check_topics(
    target: KafkaTarget, topics: list[str], timeout: float = PREFLIGHT_TIMEOUT_S
) -> None:
    """Raise :class:`BrokerUnavailable` unless the broker answers and every topic exists."""
    _partitions(target, topics, timeout)


def _identity(target: KafkaTarget) -> tuple[str, ...]:
    """Whom a client of ``target`` asks, and as whom (what it may see depends on both)."""
    if isinstance(target, str):
        return (target,)
    return (target.kafka_bootstrap, target.kafka_security_protocol, target.kafka_sasl_username)


def _offset_for_time(consumer: Consumer, topic: str, partition: int, time_ms: int) -> int:
    found = consumer.offsets_for_times(
        [TopicPartition(topic, partition, time_ms)], timeout=PREFLIGHT_TIMEOUT_S
    )[0]
    return OFFSET_END if found.offset < 0 else found.offset


def offset_at(target: KafkaTarget, topic: str, partition: int, time_ms: int) -> int:
    """The first offset of ``partition`` at or after ``time_ms`` (its end if there is none)."""
    consumer = Consumer(kafka_config(target, {"group.id": "alarmflow-offset-lookup"}))
    try:
        return _offset_for_time(consumer, topic, partition, time_ms)
    finally:
        consumer.close()


def start_offset(consumer: Consumer, topic: str, partition: int, start: StartPosition) -> int:
    """Where ``partition`` starts when no offset was recovered, as an offset of the broker's,
    asked with ``consumer`` (the partition's own, not assigned yet): ``offset`` as given,
    ``time`` the first offset at or after it, ``earliest`` and ``latest`` the partition's
    beginning and end now. librdkafka would resolve a logical start itself, but a new consumer
    does not know the partition's leader yet and asks again only after 500 ms (its debug log:
    "no current leader for partition: (re)starting offset query timer"): half a second of each
    flow's start. If the broker does not answer, the logical start is left to librdkafka,
    which goes on asking."""
    if start.kind == "offset":
        return start.value
    if start.kind == "time":
        return _offset_for_time(consumer, topic, partition, start.value)
    logical = OFFSET_BEGINNING if start.kind == "earliest" else OFFSET_END
    try:
        low, high = consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=PREFLIGHT_TIMEOUT_S
        )
    except KafkaException:
        return logical
    return low if logical == OFFSET_BEGINNING else high


TOPIC_CHECK_S = 30.0
"""How often (wall time) a flow asks the broker whether each of its input topics is there."""
TOPIC_CHECK_TIMEOUT_S = 10.0
"""How long the broker has to answer that."""


class TopicWatch:
    """Whether one input topic of a flow is still on the broker: ``alarmflow_input_missing``
    and a log line when it goes and when it comes back. librdkafka says nothing to a consumer of
    assigned partitions whose topic was deleted, and the flow would wait in silence.

    The topic's partitions call :meth:`poll` as they poll Kafka, on any worker; every
    :data:`TOPIC_CHECK_S` one of them takes the answer to the last request (a topic the broker
    does not know is gone; no answer, as while the broker is away, says nothing) and sends the
    next one. Nothing waits for the broker."""

    def __init__(
        self,
        flow: str,
        topic: str,
        admin: Callable[[], AdminClient],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._flow = flow
        self._topic = topic
        self._admin = admin
        self._clock = clock
        self._gauge = INPUT_MISSING.labels(flow, topic)
        self._gauge.set(0)
        self._lock = threading.Lock()
        self._next = clock() + TOPIC_CHECK_S
        self._asked: Future | None = None
        self._missing = False

    def poll(self) -> None:
        """Every :data:`TOPIC_CHECK_S`: the last request's answer, and the next request."""
        if self._clock() < self._next:
            return
        with self._lock:
            if self._clock() < self._next:
                return
            self._next = self._clock() + TOPIC_CHECK_S
            asked = self._asked
            if asked is not None and not asked.done():
                return
            if asked is not None:
                self._answered(asked.exception())
            topics, timeout = TopicCollection([self._topic]), TOPIC_CHECK_TIMEOUT_S
            try:
                asking = self._admin().describe_topics(topics, request_timeout=timeout)
            except KafkaException:  # not even sent: asked again at the next check
                self._asked = None
                return
            self._asked = asking[self._topic]

    def _answered(self, error: BaseException | None) -> None:
        """The topic is there (no error) or gone (the broker does not know it); any other
        error (no answer in time, the broker away) says neither."""
        if error is None:
            present = True
        elif isinstance(error, KafkaException):
            code = error.args[0].code()
            if code != ConfluentKafkaError.UNKNOWN_TOPIC_OR_PART:
                return
            present = False
        else:
            return
        missing = not present
        if missing == self._missing:
            return
        self._missing = missing
        self._gauge.set(1 if missing else 0)
        if present:
            log.warning("%s: input topic %s is on the broker again", self._flow, self._topic)
        else:
            log.error(
                "%s: input topic %s is gone from the broker (deleted?); its partitions wait for "
                "it. When it is back, each goes on at its offset, or at the topic's first offset "
                "when its own is past the topic's end",
                self._flow,
                self._topic,
            )


class _RecordBatches(StatefulSourcePartition[list[Input], int]):
    """One Kafka partition read by a consumer of its own (``consumer``, not assigned yet), from
    ``offset``: each poll handed on as one item, the list of its records, built straight from
    librdkafka's messages, with a rejection (``on_error``) in place of each message the consumer
    could not read. Its snapshot is the next offset to read (offsets live in the recovery
    store, never in a consumer group); at each poll it sets the partition's lag (``lag``).

    One that ``ends`` at the end of its input ends once it has read up to the partition's high
    watermark: as it opens, asked of the broker before the consumer is assigned the partition
    (an assigned consumer starts fetching, and the broker holds a fetch of an empty partition
    for ``fetch.wait.max.ms`` with this request queued behind it), and after that as the
    broker's last fetch response gave it (librdkafka keeps it; no request). An
    end-of-partition event comes only from a later fetch that found nothing; it still ends a
    partition whose watermark does not say so (a transaction's marker past the last record, a
    recovered offset past the end that librdkafka resets).

    It tells :mod:`flows.input_end` when it opens and when it ends, and asks its topic's
    :class:`TopicWatch` (if any) each time it polls."""

    def __init__(
        self,
        consumer: Consumer,
        topic: str,
        partition: int,
        offset: int,
        on_error: Callable[[ConfluentMessage], Rejection],
        lag: Gauge,
        ends: bool = False,
        watch: TopicWatch | None = None,
    ) -> None:
        self._consumer = consumer
        self._topic = topic
        self._index = partition
        self._partition = TopicPartition(topic, partition)
        self._offset = offset
        self._on_error = on_error
        self._lag = lag
        self._ends = ends
        self._watch = watch
        input_end.partition_opened()
        self._eof = ends and self._high_watermark(cached=False) == offset >= 0
        consumer.assign([TopicPartition(topic, partition, offset)])

    def _high_watermark(self, cached: bool) -> int:
        """The partition's high watermark as the broker answers now or (``cached``) as its last
        fetch response said; negative when not known."""
        try:
            return self._consumer.get_watermark_offsets(
                self._partition, timeout=PREFLIGHT_TIMEOUT_S, cached=cached
            )[1]
        except KafkaException:
            return -1

    def next_batch(self) -> list[list[Input]]:
        if self._watch is not None:
            self._watch.poll()
        if not self._eof and self._offset >= 0:
            high = self._high_watermark(cached=True)
            if high >= 0:
                self._lag.set(high - self._offset)
                if self._ends and high == self._offset:
                    self._eof = True
        if self._eof:
            input_end.partition_ended()
            raise StopIteration()
        records: list[Input] = []
        topic, partition, last = self._topic, self._index, None
        for msg in self._consumer.consume(BATCH_SIZE, POLL_TIMEOUT_S):
            error = msg.error()
            if error is None:
                timestamp = msg.timestamp()[1]
                last = msg.offset()
                records.append(
                    SourceRecord(
                        topic, partition, last, msg.value(), timestamp if timestamp > 0 else None
                    )
                )
            elif error.code() == ConfluentKafkaError._PARTITION_EOF:
                self._eof = True
                break
            else:
                # An error of the consumer rather than of a message has no offset.
                last = msg.offset() if msg.offset() is not None else last
                records.append(self._on_error(msg))
        if last is not None:
            self._offset = last + 1
        return [records] if records else []

    def snapshot(self) -> int:
        return self._offset

    def close(self) -> None:
        self._consumer.close()


class LocalParts:
    """Which Kafka partition each worker of this process reads: the source records the first
    partition a worker builds (Bytewax builds a worker's partitions on the worker's thread), and
    a later step, running on the same worker, asks for it. Keying items by it sends them to the
    worker's own partition of a sink partitioned like the source, with no exchange between
    workers."""

    def __init__(self) -> None:
        self._by_worker: dict[int, str] = {}

    def record(self, part: str) -> None:
        self._by_worker.setdefault(threading.get_ident(), part)

    def part(self) -> str:
        """A partition the calling worker reads, or "" for a worker that reads none."""
        return self._by_worker.get(threading.get_ident(), "")


class CheckedKafkaSource(FixedPartitionedSource[list[Input], int]):
    """The flow's Kafka input, one partition of Bytewax's per Kafka partition
    (:class:`_RecordBatches`), named as Bytewax's own Kafka source names them, so that a
    recovery store written by either resumes with the other. The settings' client
    configuration (security included), a bounded check of the broker and topics before the
    partitions are listed (:func:`kafka_parts`), and a partition with no recovered offset
    started at the offset :func:`start_offset` finds. ``on_error`` makes the rejection of a
    message the consumer could not read; with ``local_parts`` it records the partitions each
    worker reads. Its partitions watch that their topics are still there (:class:`TopicWatch`)
    and, unless the settings ``tail``, end at the end of their input."""

    def __init__(
        self,
        settings: Settings,
        topics: list[str],
        on_error: Callable[[ConfluentMessage], Rejection],
        flow: str,
        local_parts: LocalParts | None = None,
    ) -> None:
        config = {
            key: value
            for key, value in kafka_config(settings).items()
            if key not in SOURCE_PROPERTIES
        }
        self.config = {
            **config,
            # Offsets live in the recovery store: no group is joined, nothing committed.
            "group.id": "BYTEWAX_IGNORED",
            "enable.auto.commit": "false",
            "enable.partition.eof": str(not settings.tail).lower(),
            **OFFSET_RESET,
        }
        """Each partition's consumer configuration."""
        self._settings = settings
        self._topics = topics
        self._on_error = on_error
        self._flow = flow
        self._local_parts = local_parts
        self._admin: AdminClient | None = None
        self._watches = {t: TopicWatch(flow, t, self._admin_client) for t in topics}

    def _admin_client(self) -> AdminClient:
        """The admin client the topic watches ask the broker with, made on first use."""
        if self._admin is None:
            self._admin = AdminClient(kafka_config(self._settings))
        return self._admin

    def list_parts(self) -> list[str]:
        return kafka_parts(self._settings, tuple(self._topics))

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _RecordBatches:
        if self._local_parts is not None:
            self._local_parts.record(for_part)
        index, topic = for_part.split("-", 1)
        partition = int(index)
        consumer = Consumer(self.config)
        if resume_state is None:
            resume_state = start_offset(consumer, topic, partition, self._settings.start)
        return _RecordBatches(
            consumer,
            topic,
            partition,
            resume_state,
            self._on_error,
            CONSUMER_LAG.labels(self._flow, topic, index),
            ends=not self._settings.tail,
            watch=self._watches.get(topic),
        )


def part_name(topic: str, partition: int) -> str:
    """A Kafka partition's name as Bytewax's Kafka source names its partitions."""
    return f"{partition}-{topic}"


def kafka_parts(settings: Settings, topics: tuple[str, ...]) -> list[str]:
    """The partitions of ``topics``, named as the flow's Kafka source names them, once the
    broker and the topics have been checked (:func:`check_topics`, whose answer they come
    from)."""
    found = _partitions(settings, list(topics))
    return [part_name(topic, partition) for topic in topics for partition in found[topic]]


def _consumer_error(name: str) -> Callable[[ConfluentMessage], Rejection]:
    report = RateLimited(log).error

    def consumer_error(msg: ConfluentMessage) -> Rejection:
        error = msg.error()
        report("%s: Kafka consumer error: %s", name, error)
        timestamp = msg.timestamp()[1]
        record = SourceRecord(
            msg.topic() or "",
            msg.partition() or 0,
            msg.offset() or 0,
            msg.value(),
            timestamp if timestamp > 0 else None,
        )
        return Rejection(Reason.KAFKA_ERROR, str(error), record)

    return consumer_error


def kafka_batches(
    step_id: str,
    flow: Dataflow,
    settings: Settings,
    topics: tuple[str, ...],
    name: str,
    local_parts: LocalParts | None = None,
) -> Stream[list[Input]]:
    """The flow's input as one list per poll of a partition (up to the consumer's batch size),
    for flows that work a batch at a time: the per-item cost of a Bytewax step is then paid
    once per batch. Counted per batch; ``local_parts`` learns which partitions each worker
    reads."""
    source = CheckedKafkaSource(settings, list(topics), _consumer_error(name), name, local_parts)
    consumed = {topic: CONSUMED.labels(name, topic) for topic in topics}

    def count(batch: list[Input]) -> list[Input]:
        per_topic: dict[str, int] = {}
        for record in batch:
            if type(record) is SourceRecord:
                per_topic[record.topic] = per_topic.get(record.topic, 0) + 1
        for topic, number in per_topic.items():
            consumed[topic].inc(number)
        return batch

    return op.map(f"{step_id}_count", op.input(step_id, flow, source), count)


def kafka_records(
    step_id: str, flow: Dataflow, settings: Settings, topics: tuple[str, ...], name: str
) -> tuple[Stream[SourceRecord], Stream[Rejection]]:
    """The flow's input records one at a time (:func:`kafka_batches` taken apart), and the
    rejections of messages the consumer could not read."""
    batches = kafka_batches(step_id, flow, settings, topics, name)
    inputs = op.flat_map(f"{step_id}_records", batches, lambda batch: batch)
    split = op.branch(f"{step_id}_ok", inputs, lambda item: type(item) is SourceRecord)
    return split.trues, split.falses  # type: ignore[return-value]


Message = tuple[str, bytes]
"""A message key and value."""


def largest_value(settings: Settings) -> int:
    """The largest message value the flows' producers take: their ``message.max.bytes``
    (``ALARMFLOW_KAFKA_CONFIG`` may set it) less room for the key and framing. A larger one
    would make ``produce`` raise and stop the flow; a flow that makes its own messages checks
    them against this first. (The topic's ``max.message.bytes`` must be as large.)"""
    configured = settings.kafka_config.get("message.max.bytes", PRODUCER_MESSAGE_MAX_BYTES)
    return int(configured) - MESSAGE_FRAMING_BYTES


def dead_letter(flow: str) -> Callable[[Rejection], Message]:
    """Log and count a rejection of ``flow``, and make its dead-letter message."""
    counters: dict[Reason, Counter] = {}
    warn = RateLimited(log).warning

    def to_message(rejection: Rejection) -> Message:
        counter = counters.get(rejection.reason)
        if counter is None:
            counter = counters[rejection.reason] = REJECTED.labels(flow, str(rejection.reason))
        counter.inc()
        record = rejection.record
        warn(
            "%s: rejected %s[%d]@%d: %s",
            flow,
            record.topic,
            record.partition,
            record.offset,
            rejection.error,
        )
        return "", rejection.to_dlq(flow)

    return to_message


def without_raw(value: bytes) -> bytes:
    """A dead-letter message with its ``raw`` left empty (``raw_bytes`` still says how large
    the message was, and the topic, partition and offset where it is): what the dead-letter
    topic gets in place of one larger than the topic's ``max.message.bytes``, which the broker
    would refuse after every restart."""
    record = json.loads(value)
    record["raw"] = ""
    return json_bytes(record)


FLUSH_MARGIN_S = 5.0
"""How much longer than its messages' own timeout a producer's flush waits for their reports."""
FLUSH_SLICE_S = 1.0
"""A producer's flush waits in slices of this, to learn between them that the flow is stopping
(:func:`flows.input_end.stopping`) and stop waiting for a broker that is away."""


class DeliveredPartition(StatelessSinkPartition[Message]):
    """Produces messages and waits for their delivery: :meth:`write_batch` does both,
    or :meth:`send` produces (to more than one topic, if need be) and :meth:`wait` waits, so
    that other work can run while the broker acknowledges. With ``shrink``, the messages the
    broker refuses as too large are sent again each alone (the broker refuses a whole batch for
    one message too large, and its neighbours are not), and one refused alone as ``shrink`` makes
    it. Once the flow is stopping (``stopping``, the flow's unless given) it waits for no more
    than a slice of a flush: what was not delivered is replayed by recovery."""

    def __init__(
        self,
        producer: Producer,
        topic: str,
        flow: str,
        stage: str,
        on_delivered: Callable[[int], None] | None,
        timeout_s: float,
        shrink: Callable[[bytes], bytes] | None = None,
        stopping: threading.Event | None = None,
    ) -> None:
        self._producer = producer
        self._stopping = input_end.stopping() if stopping is None else stopping
        self._topic = topic
        self._flow = flow
        self._stage = Stage(flow, stage)
        self._on_delivered = on_delivered
        self._shrink = shrink
        # The producer's message.timeout.ms is timeout_s: a flush waits a little longer, so
        # that every message's report, delivered or timed out, is in when it returns.
        self._flush_s = timeout_s + FLUSH_MARGIN_S
        self._failures: list[str] = []
        self._too_large: list[tuple[str, bytes | None, bytes]] = []
        self._sent: dict[str, int] = {}

    def _flush(self) -> int:
        """Wait for the delivery of what was produced, for up to the flush's time in
        slices of :data:`FLUSH_SLICE_S`, or one slice once the flow is stopping; how many
        messages are still undelivered."""
        deadline = time.monotonic() + self._flush_s
        while True:
            left = deadline - time.monotonic()
            pending = self._producer.flush(max(0.0, min(FLUSH_SLICE_S, left)))
            if not pending or left <= FLUSH_SLICE_S or self._stopping.is_set():
                return pending

    def _on_delivery(self, err, msg) -> None:
        if err is None:
            return
        if err.code() == ConfluentKafkaError.MSG_SIZE_TOO_LARGE and self._shrink is not None:
            self._too_large.append((msg.topic(), msg.key(), msg.value()))
        else:
            self._failures.append(f"{msg.topic()}: {err}")

    def _send_alone(self, topic: str, key: bytes | None, value: bytes) -> None:
        """Send a message refused as too large in a batch of its own, and if the broker refuses
        it alone too, as ``shrink`` makes it; a failure of the last attempt is a failure."""
        assert self._shrink is not None
        error = self._deliver(topic, key, value)
        if error is not None and error.code() == ConfluentKafkaError.MSG_SIZE_TOO_LARGE:
            smaller = self._shrink(value)
            error = self._deliver(topic, key, smaller)
            if error is None:
                log.warning(
                    "%s: %s refused a message of %d bytes as too large; sent as %d bytes",
                    self._flow,
                    topic,
                    len(value),
                    len(smaller),
                )
        if error is not None:
            self._failures.append(f"{topic}: {error}")

    def _deliver(self, topic: str, key: bytes | None, value: bytes) -> ConfluentKafkaError | None:
        """Produce one message and wait for it: its error, or ``None`` once the producer no
        longer holds it and reported no error (only failures are reported)."""
        reports: list[ConfluentKafkaError] = []
        self._producer.produce(
            topic, value, key=key, on_delivery=lambda err, _msg: reports.append(err)
        )
        if self._flush():
            return ConfluentKafkaError(ConfluentKafkaError._MSG_TIMED_OUT)
        return reports[0] if reports else None

    def send(self, items: list[Message], topic: str = "") -> None:
        """Produce ``items`` to ``topic`` (this sink's unless given) without waiting."""
        topic = topic or self._topic
        produce, on_delivery = self._producer.produce, self._on_delivery
        with self._stage.batch(len(items)):
            for key, value in items:
                produce(topic, value, key=key or None, on_delivery=on_delivery)
        self._sent[topic] = self._sent.get(topic, 0) + len(items)

    def wait(self) -> None:
        """Wait for the delivery of everything sent; a failed delivery stops the flow."""
        with self._stage.batch(0):
            pending = self._flush()
            too_large, self._too_large = self._too_large, []
            for topic, key, value in too_large:
                self._send_alone(topic, key, value)
        failures, sent = self._failures, self._sent
        self._failures, self._sent = [], {}
        if failures or pending:
            # Logged as well as raised: across processes Bytewax loses the exception's text.
            message = f"topics {', '.join(sent)}: {pending} undelivered, errors: {failures[:3]}"
            log.error("%s: %s; stopping so that recovery replays them", self._flow, message)
            input_end.failed()
            raise RuntimeError(message)
        if self._on_delivered is not None:
            self._on_delivered(sum(sent.values()))

    def write_batch(self, items: list[Message]) -> None:
        self.send(items)
        self.wait()

    def close(self) -> None:
        input_end.sink_closing()
        self._flush()


class DeliveredSink(DynamicSink[Message]):
    """Produces ``(key, value)`` messages to ``topic`` and waits for every delivery; a
    failed delivery stops the flow (recovery then replays it), never dropped silently as
    Bytewax's ``KafkaSink`` would. ``stage`` names its time in the stage metrics,
    ``on_delivered(n)`` is told of each delivered batch, and ``shrink`` makes a message the
    broker refuses as too large smaller (:class:`DeliveredPartition`)."""

    def __init__(
        self,
        target: KafkaTarget,
        topic: str,
        flow: str,
        stage: str,
        on_delivered: Callable[[int], None] | None = None,
        shrink: Callable[[bytes], bytes] | None = None,
    ) -> None:
        self._target = target
        self._topic = topic
        self._flow = flow
        self._stage = stage
        self._on_delivered = on_delivered
        self._shrink = shrink

    def build(self, step_id: str, worker_index: int, worker_count: int) -> DeliveredPartition:
        return self.partition()

    def partition(self) -> DeliveredPartition:
        """A partition of this sink: a producer of its own."""
        check_topics(self._target, [self._topic])
        producer = Producer(kafka_config(self._target, delivery_properties(self._target)))
        return DeliveredPartition(
            producer,
            self._topic,
            self._flow,
            self._stage,
            self._on_delivered,
            delivery_timeout_s(self._target),
            self._shrink,
        )
