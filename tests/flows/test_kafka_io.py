"""The Kafka source's client settings (no broker needed: the source connects when it runs);
the topic check and the start offsets on the real broker, and the partitions each worker
reads."""

import json
import threading
import time
from concurrent.futures import Future
from types import SimpleNamespace

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaException,
    Message,
    Producer,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka import KafkaError as ConfluentKafkaError
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource
from prometheus_client import REGISTRY

from alarmflow.config import StartPosition, load_settings
from alarmflow.kafka_tools import read_all
from alarmflow.metrics import CONSUMER_LAG
from alarmflow.services import KafkaBroker, free_port, free_ports
from flows import kafka_io
from flows.kafka_io import (
    SOURCE_PROPERTIES,
    BrokerUnavailable,
    CheckedKafkaSource,
    DeliveredPartition,
    DeliveredSink,
    LocalParts,
    check_topics,
    kafka_parts,
    largest_value,
    start_offset,
    without_raw,
)
from operators.rejects import Reason, Rejection, SourceRecord


def no_error(msg: Message) -> Rejection:
    pytest.fail(str(msg.error()))


def source(settings, topic: str) -> CheckedKafkaSource:
    return CheckedKafkaSource(settings, [topic], no_error, "alert")


def source_config(**environ: str) -> dict:
    return source(load_settings(environ), "alarmflow.alert").config


def test_a_run_that_reads_to_the_end_keeps_librdkafkas_fetch_wait():
    """A partition sees the end of its input from its high watermark, not from an empty fetch
    the broker holds for ``fetch.wait.max.ms``: no run needs a shorter wait."""
    assert "fetch.wait.max.ms" not in source_config(ALARMFLOW_TAIL="0")
    assert "fetch.wait.max.ms" not in source_config(ALARMFLOW_TAIL="1")


def test_kafka_config_sets_another_fetch_wait():
    setting = '{"fetch.wait.max.ms": 250}'
    assert (
        source_config(ALARMFLOW_TAIL="0", ALARMFLOW_KAFKA_CONFIG=setting)["fetch.wait.max.ms"]
        == "250"
    )


def test_the_largest_message_value_follows_the_producers_message_max_bytes():
    assert largest_value(load_settings({})) == 1_000_000 - 1024
    raised = load_settings({"ALARMFLOW_KAFKA_CONFIG": '{"message.max.bytes": 4194304}'})
    assert largest_value(raised) == 4_194_304 - 1024


def test_kafka_config_does_not_change_what_the_source_sets_itself():
    """The consumers' own group, commits, end-of-partition events and offset reset win over
    ALARMFLOW_KAFKA_CONFIG."""
    setting = (
        '{"group.id": "mine", "enable.auto.commit": true, "enable.partition.eof": false,'
        ' "auto.offset.reset": "latest", "client.id": "alarmflow-a"}'
    )
    config = source_config(ALARMFLOW_TAIL="0", ALARMFLOW_KAFKA_CONFIG=setting)
    assert config["client.id"] == "alarmflow-a"
    assert {key: config[key] for key in SOURCE_PROPERTIES} == {
        "group.id": "BYTEWAX_IGNORED",
        "enable.auto.commit": "false",
        "enable.partition.eof": "true",
        "auto.offset.reset": "earliest",
    }


def test_topics_seen_once_are_not_asked_for_again_nor_their_partitions_and_a_missing_one_is(
    kafka_broker, kafka_topics, monkeypatch
):
    asked: list[int] = []
    admin = kafka_io.AdminClient

    def counted(config: dict):
        asked.append(1)
        return admin(config)

    monkeypatch.setattr(kafka_io, "AdminClient", counted)
    monkeypatch.setattr(kafka_io, "_SEEN_TOPICS", {})
    first, second = kafka_topics("first", "second")
    bootstrap = kafka_broker.bootstrap

    check_topics(bootstrap, [first])
    check_topics(bootstrap, [second, first])
    assert len(asked) == 1  # the first answer listed both
    settings = load_settings({"ALARMFLOW_KAFKA_BOOTSTRAP": bootstrap})
    check_topics(settings, [first])
    parts = kafka_parts(settings, (first, second))
    assert len(asked) == 2  # the source's and the sinks' partitions: the check's answer
    assert parts == [f"{p}-{t}" for t in (first, second) for p in range(3)]
    with pytest.raises(BrokerUnavailable, match=r"topics missing .*\.missing$"):
        check_topics(bootstrap, [first, f"{first}.missing"])
    [third] = kafka_topics("third")
    check_topics(bootstrap, [third])
    assert len(asked) == 4  # the missing topic, then one made since, asked for afresh


class Metadata:
    """An admin client's answer: ``topics`` by name, each with its partitions or an error."""

    def __init__(self, **topics: int | ConfluentKafkaError) -> None:
        self.topics = {
            name: SimpleNamespace(
                error=found if isinstance(found, ConfluentKafkaError) else None,
                partitions={}
                if isinstance(found, ConfluentKafkaError)
                else dict.fromkeys(range(found)),
            )
            for name, found in topics.items()
        }

    def list_topics(self, timeout: float) -> "Metadata":
        return self


def test_a_topic_the_broker_answers_with_an_error_for_is_reported_not_listed_empty(monkeypatch):
    """A topic whose partitions have no leader yet comes with an error and no partitions: its
    flow would have read nothing from it. The error is reported, and the topic asked for again
    at the next check."""
    answers = [Metadata(ok=2, young=ConfluentKafkaError(ConfluentKafkaError.LEADER_NOT_AVAILABLE))]
    monkeypatch.setattr(kafka_io, "AdminClient", lambda config: answers[0])
    monkeypatch.setattr(kafka_io, "_SEEN_TOPICS", {})
    settings = load_settings({"ALARMFLOW_KAFKA_BOOTSTRAP": "127.0.0.1:1"})
    with pytest.raises(BrokerUnavailable, match=r"topics missing .*: young \(.*[Ll]eader"):
        kafka_parts(settings, ("ok", "young"))
    answers[0] = Metadata(ok=2, young=1)
    assert kafka_parts(settings, ("ok", "young")) == ["0-ok", "1-ok", "0-young"]


def test_a_start_is_looked_up_as_an_offset_of_the_broker(kafka_broker, kafka_topics):
    """A logical start becomes the partition's offsets now (librdkafka's own lookup waits
    500 ms for a new consumer); a time start the first offset at or after it."""
    [topic] = kafka_topics("start", partitions=1)
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap})
    for seq, timestamp in enumerate((1_000, 2_000, 3_000)):
        producer.produce(topic, b"%d" % seq, partition=0, timestamp=timestamp)
    assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": kafka_broker.bootstrap, "group.id": "g"})

    def start(kind: str, value: int = 0) -> int:
        return start_offset(consumer, topic, 0, StartPosition(kind, value))

    assert start("earliest") == 0
    assert start("latest") == 3
    assert start("offset", 2) == 2
    assert start("time", 1_500) == 1
    assert start("time", 9_000) == OFFSET_END
    consumer.close()


def test_a_resume_offset_the_broker_no_longer_has_goes_on_from_its_first_offset(
    kafka_broker, kafka_topics
):
    """Retention deleted the records up to past the recovered offset: the resume reads the
    records still there, where librdkafka's default reset went to the end and skipped them."""
    [topic] = kafka_topics("retained", partitions=1)
    produce_to(kafka_broker.bootstrap, topic, 10)
    admin = AdminClient({"bootstrap.servers": kafka_broker.bootstrap})
    [deleted] = admin.delete_records([TopicPartition(topic, 0, 6)]).values()
    assert deleted.result(30).low_watermark == 6
    settings = load_settings(
        {"ALARMFLOW_KAFKA_BOOTSTRAP": kafka_broker.bootstrap, "ALARMFLOW_TAIL": "0"}
    )
    assert read_to_the_end(source(settings, topic).build_part("in", f"0-{topic}", 2)) == [
        6,
        7,
        8,
        9,
    ]


def read_to_the_end(part) -> list[int]:
    """The offsets a source partition hands on until it ends; fails unless it ends within 30
    s."""
    offsets: list[int] = []
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            try:
                batches = part.next_batch()
            except StopIteration:
                return offsets
            offsets += [record.offset for batch in batches for record in batch]
    finally:
        part.close()
    pytest.fail(f"the partition did not end within 30 s, after offsets {offsets}")


@pytest.mark.parametrize(
    ("records", "resume", "offsets"),
    [
        (5, None, [0, 1, 2, 3, 4]),  # read to its high watermark
        (0, None, []),  # empty as it opens
        (5, 5, []),  # resumed at its end
        (3, 10, [0, 1, 2]),  # resumed past its end: librdkafka starts it again from its first
    ],
)
def test_a_partition_read_to_the_end_ends_at_its_high_watermark_without_an_empty_fetch(
    kafka_broker, kafka_topics, records, resume, offsets
):
    """A run that ends at the end of its input sees the end from the partition's high
    watermark, not from an empty fetch: here the broker would hold that fetch for a minute
    (``fetch.wait.max.ms``), and each partition still ends within the test's 30 s."""
    [topic] = kafka_topics("ends", partitions=1)
    produce_to(kafka_broker.bootstrap, topic, records)
    environ = {
        "ALARMFLOW_KAFKA_BOOTSTRAP": kafka_broker.bootstrap,
        "ALARMFLOW_TAIL": "0",
        "ALARMFLOW_START": "earliest",
        "ALARMFLOW_KAFKA_CONFIG": json.dumps({"fetch.wait.max.ms": 60_000}),
    }
    part = source(load_settings(environ), topic).build_part("in", f"0-{topic}", resume)
    assert read_to_the_end(part) == offsets


def test_a_start_the_broker_does_not_answer_for_is_left_to_librdkafka(free_port, monkeypatch):
    monkeypatch.setattr(kafka_io, "PREFLIGHT_TIMEOUT_S", 0.5)
    consumer = Consumer({"bootstrap.servers": f"127.0.0.1:{free_port()}", "group.id": "g"})
    assert start_offset(consumer, "t", 0, StartPosition("earliest")) == OFFSET_BEGINNING
    assert start_offset(consumer, "t", 0, StartPosition("latest")) == OFFSET_END
    consumer.close()


def test_local_parts_give_each_worker_the_first_partition_it_built():
    local = LocalParts()
    local.record("1-t")
    local.record("0-t")
    other: list[str] = []

    def worker() -> None:
        other.append(local.part())
        local.record("2-t")
        other.append(local.part())

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(10)

    assert local.part() == "1-t"
    assert other == ["", "2-t"]


class Polled:
    """A consumer whose one poll returns ``messages``, and which notes what it is asked."""

    def __init__(self, messages: list[Message], high: int = -1001) -> None:
        self._messages = messages
        self._high = high
        self.asked: list[str] = []

    def get_watermark_offsets(self, partition: TopicPartition, timeout: float, cached: bool):
        self.asked.append(f"watermark cached={cached}")
        return (0, self._high)

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.asked.append(f"assign {[(p.partition, p.offset) for p in partitions]}")

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        messages, self._messages = self._messages, []
        return messages

    def close(self) -> None:
        pass


def polled(consumer: Polled, offset: int, on_error=no_error, ends: bool = False):
    lag = CONSUMER_LAG.labels("test", "t", "0")
    return kafka_io._RecordBatches(consumer, "t", 0, offset, on_error, lag, ends=ends)


def test_an_error_of_the_consumer_after_a_message_keeps_the_message_s_offset():
    """A poll may hand an error event of the consumer itself (the broker's connection lost), with
    no offset, after its messages: the snapshot still resumes after the last message read, not
    at the poll's start (which read that poll again after a crash)."""
    rejected = []
    consumer = Polled(
        [
            Message(topic="t", partition=0, offset=5, value=b"{}"),
            Message(topic="t", partition=0, offset=6, value=b"{}"),
            Message(error=ConfluentKafkaError(ConfluentKafkaError._TRANSPORT)),
        ]
    )
    batches = polled(consumer, 5, on_error=rejected.append)
    [records] = batches.next_batch()
    assert [record.offset for record in records[:2]] == [5, 6]
    assert len(rejected) == 1
    assert batches.snapshot() == 7


@pytest.mark.parametrize(("high", "ends_at_once"), [(7, True), (9, False)])
def test_a_partition_read_to_the_end_asks_its_watermark_before_its_consumer_is_assigned(
    high, ends_at_once
):
    """An assigned consumer starts fetching, and the broker holds a fetch of an empty partition
    for ``fetch.wait.max.ms`` with a later request queued behind it: the watermark a partition
    opening at offset 7 ends by is asked first. After that, each poll reads it from the last
    fetch response (cached)."""
    consumer = Polled([], high=high)
    batches = polled(consumer, 7, ends=True)
    assert consumer.asked == ["watermark cached=False", "assign [(0, 7)]"]
    if ends_at_once:
        with pytest.raises(StopIteration):
            batches.next_batch()
        assert consumer.asked[2:] == []
    else:
        assert batches.next_batch() == []
        assert consumer.asked[2:] == ["watermark cached=True"]
        assert (
            REGISTRY.get_sample_value(
                "alarmflow_kafka_consumer_lag", {"flow": "test", "topic": "t", "partition": "0"}
            )
            == 2
        )


def test_a_tailing_partition_never_asks_the_broker_for_its_watermark():
    consumer = Polled([])
    batches = polled(consumer, 7)
    batches.next_batch()
    assert consumer.asked == ["assign [(0, 7)]", "watermark cached=True"]


def lag(topic: str) -> float | None:
    labels = {"flow": "alert", "topic": topic, "partition": "0"}
    return REGISTRY.get_sample_value("alarmflow_kafka_consumer_lag", labels)


def test_a_partition_s_lag_is_its_high_watermark_less_its_next_offset(kafka_broker, kafka_topics):
    """Tailing ten records from offset 4 on the real broker: 0 until a fetch response gave the
    watermark, then at each poll 10 less the offset it starts at, and 0 once all are read."""
    [topic] = kafka_topics("lag", partitions=1)
    produce_to(kafka_broker.bootstrap, topic, 10)
    settings = load_settings({"ALARMFLOW_KAFKA_BOOTSTRAP": kafka_broker.bootstrap})
    part = source(settings, topic).build_part("in", f"0-{topic}", 4)
    seen: list[tuple[int, float | None]] = []
    deadline = time.monotonic() + 30
    try:
        while part.snapshot() < 10 or lag(topic) != 0:
            assert time.monotonic() < deadline, f"offset and lag before each poll: {seen}"
            before = part.snapshot()
            part.next_batch()
            seen.append((before, lag(topic)))
    finally:
        part.close()
    assert all(value in (0, 10 - before) for before, value in seen), seen


def limit_message_bytes(bootstrap: str, topic: str, limit: int) -> None:
    """Set ``topic``'s max.message.bytes: the broker refuses a larger message."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    entry = ConfigEntry(
        "max.message.bytes", str(limit), incremental_operation=AlterConfigOpType.SET
    )
    resource = ConfigResource("topic", topic, incremental_configs=[entry])
    [altered] = admin.incremental_alter_configs([resource]).values()
    altered.result(30)


def test_only_failed_deliveries_are_reported_and_a_refused_message_stops_the_write(
    kafka_broker, kafka_topics
):
    """The flows' producers report only failed deliveries to Python (the lock is not taken for
    a Python call per delivered message): a batch the broker took is counted as delivered with
    no report, and a message it refuses still stops the write, named by its error."""
    [topic] = kafka_topics("decisions", partitions=1)
    limit_message_bytes(kafka_broker.bootstrap, topic, 20_000)
    delivered: list[int] = []
    sink = kafka_io.DeliveredSink(kafka_broker.bootstrap, topic, "t", "kafka", delivered.append)
    partition = sink.partition()
    reports: list[object] = []
    on_delivery = partition._on_delivery
    partition._on_delivery = lambda err, msg: (reports.append(err), on_delivery(err, msg))
    partition.write_batch([("a", b"1"), ("b", b"2")])
    assert (delivered, reports) == ([2], [])
    with pytest.raises(RuntimeError, match="MSG_SIZE_TOO_LARGE"):
        partition.write_batch([("c", b"x" * 100_000)])
    partition.close()
    assert delivered == [2]
    assert len(reports) == 1
    assert read_all(kafka_broker.bootstrap, topic) == [b"1", b"2"]


def test_a_dead_letter_larger_than_its_topic_takes_goes_without_its_raw(kafka_broker, kafka_topics):
    """A dead-letter topic whose max.message.bytes is below a dead letter's 64 KiB of raw: the
    broker refused the batch, the flow stopped and its replay was refused again, forever. The
    large message now goes without its raw, and the small ones refused in its batch go whole."""
    [dlq] = kafka_topics("dlq", partitions=1)
    limit_message_bytes(kafka_broker.bootstrap, dlq, 20_000)
    record = SourceRecord("in", 0, 7, b"x" * 100_000, None)
    large = Rejection(Reason.NOT_JSON, "not valid JSON", record)
    small = Rejection(Reason.NOT_JSON, "not valid JSON", SourceRecord("in", 0, 8, b"bad", None))
    sink = kafka_io.DeliveredSink(kafka_broker.bootstrap, dlq, "t", "dlq", shrink=without_raw)
    partition = sink.partition()
    partition.write_batch([("", large.to_dlq("t")), ("", small.to_dlq("t"))])
    partition.close()
    letters = sorted(
        (json.loads(value) for value in read_all(kafka_broker.bootstrap, dlq)),
        key=lambda letter: letter["offset"],
    )
    assert [(letter["offset"], letter["raw"]) for letter in letters] == [(7, ""), (8, "bad")]
    assert letters[0]["raw_bytes"] == 100_000


class Admin:
    """An admin client whose answers the test gives (futures it keeps)."""

    def __init__(self) -> None:
        self.asked: list[Future] = []

    def describe_topics(self, topics: TopicCollection, request_timeout: float) -> dict:
        self.asked.append(Future())
        return {topics.topic_names[0]: self.asked[-1]}


def test_a_topic_watch_asks_every_interval_never_waits_and_reads_no_answer_as_nothing():
    """Every TOPIC_CHECK_S one request; one not answered yet is not asked again; a timeout (the
    broker away) changes nothing; an unknown topic is missing until the broker knows it again."""
    now = [0.0]
    admin = Admin()
    watch = kafka_io.TopicWatch("alert", "t.watched", lambda: admin, clock=lambda: now[0])

    def at(seconds: float) -> float | None:
        now[0] = seconds
        watch.poll()
        return REGISTRY.get_sample_value(
            "alarmflow_input_missing", {"flow": "alert", "topic": "t.watched"}
        )

    assert (at(29), len(admin.asked)) == (0, 0)
    assert (at(30), len(admin.asked)) == (0, 1)
    assert (at(60), len(admin.asked)) == (0, 1)  # not answered yet
    admin.asked[0].set_exception(
        KafkaException(ConfluentKafkaError(ConfluentKafkaError._TIMED_OUT))
    )
    assert (at(90), len(admin.asked)) == (0, 2)
    unknown = ConfluentKafkaError(ConfluentKafkaError.UNKNOWN_TOPIC_OR_PART)
    admin.asked[1].set_exception(KafkaException(unknown))
    assert (at(120), len(admin.asked)) == (1, 3)
    admin.asked[2].set_result(object())
    assert (at(150), len(admin.asked)) == (0, 4)


def produce_to(bootstrap: str, topic: str, count: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for _ in range(count):
        producer.produce(topic, b"{}", partition=0)
    assert producer.flush(30) == 0


def missing(topic: str) -> float | None:
    return REGISTRY.get_sample_value("alarmflow_input_missing", {"flow": "alert", "topic": topic})


def test_an_input_topic_deleted_under_a_running_flow_is_reported_and_read_again_when_it_is_back(
    kafka_broker, kafka_topics, monkeypatch, caplog
):
    """librdkafka says nothing to a consumer of assigned partitions whose topic was deleted: the
    flow waited in silence. Its partitions now find the topic gone (the gauge, a log line),
    wait for it, and read the topic made again from its first offset."""
    monkeypatch.setattr(kafka_io, "TOPIC_CHECK_S", 0.0)
    [topic] = kafka_topics("deleted", partitions=1)
    produce_to(kafka_broker.bootstrap, topic, 5)
    settings = load_settings(
        {"ALARMFLOW_KAFKA_BOOTSTRAP": kafka_broker.bootstrap, "ALARMFLOW_START": "earliest"}
    )
    part = source(settings, topic).build_part("in", f"0-{topic}", None)
    admin = AdminClient({"bootstrap.servers": kafka_broker.bootstrap})

    def read_until(done) -> list[int]:
        offsets: list[int] = []
        deadline = time.monotonic() + 30
        while not done(offsets):
            assert time.monotonic() < deadline, f"read {offsets}, gauge {missing(topic)}"
            offsets += [record.offset for batch in part.next_batch() for record in batch]
        return offsets

    try:
        assert missing(topic) == 0
        assert read_until(lambda offsets: len(offsets) == 5) == [0, 1, 2, 3, 4]
        [deleted] = admin.delete_topics([topic]).values()
        deleted.result(30)
        with caplog.at_level("WARNING", logger="flows.kafka_io"):
            assert read_until(lambda _: missing(topic) == 1) == []
            kafka_broker.create_topics([topic], partitions=1)
            produce_to(kafka_broker.bootstrap, topic, 3)
            assert read_until(lambda offsets: len(offsets) == 3) == [0, 1, 2]
            read_until(lambda _: missing(topic) == 0)
        gone, back = [r.getMessage() for r in caplog.records if r.name == "flows.kafka_io"]
        assert gone.startswith(f"alert: input topic {topic} is gone from the broker (deleted?)")
        assert back == f"alert: input topic {topic} is on the broker again"
    finally:
        part.close()


@pytest.mark.integration
def test_a_delivery_waits_out_a_broker_away_longer_than_thirty_seconds(tmp_path):
    """A message in flight (a dead letter, a converge decision) while the broker is away for 35
    s: the producer gave it up after 30 s and the flow stopped. It now waits for
    ALARMFLOW_KAFKA_OUTAGE_S, as a flow waits out Redis, and delivers it once the broker is
    back."""
    broker = KafkaBroker(*free_ports(2), tmp_path / "kafka")
    broker.start()
    try:
        broker.create_topics(["dlq"], 1)
        settings = load_settings(
            {"ALARMFLOW_KAFKA_BOOTSTRAP": broker.bootstrap, "ALARMFLOW_KAFKA_OUTAGE_S": "180"}
        )
        part = DeliveredSink(settings, "dlq", "alert", "dlq").partition()
        part.write_batch([("", b"before")])
        broker.stop()
        stopped = time.monotonic()
        part.send([("", b"during")])
        time.sleep(35)  # the outage
        broker.start()
        part.wait()
        assert time.monotonic() - stopped > 35
        assert sorted(read_all(broker.bootstrap, "dlq")) == [b"before", b"during"]
        part.close()
    finally:
        broker.stop()


def test_a_delivery_is_no_longer_waited_for_once_the_flow_is_stopping():
    """A message for a broker that is not there, waited for up to 185 s: once the flow starts
    stopping (here after a moment, from another thread, as a sink closing would), the wait ends
    after the flush's slice and the message counts as undelivered; recovery replays it."""
    stopping = threading.Event()
    producer = Producer({"bootstrap.servers": f"127.0.0.1:{free_port()}", "log_level": 0})
    part = DeliveredPartition(producer, "dlq", "t_stop", "dlq", None, 180, stopping=stopping)
    part.send([("", b"never delivered")])
    threading.Timer(0.5, stopping.set).start()
    with pytest.raises(RuntimeError, match="topics dlq: 1 undelivered"):
        part.wait()
