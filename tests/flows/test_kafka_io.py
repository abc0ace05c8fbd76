"""The Kafka source's client settings (no broker needed: the source connects when it runs)."""

from alarmflow.config import load_settings
from flows.kafka_io import END_FETCH_WAIT_MS, CheckedKafkaSource


def fetch_wait(**environ: str) -> object:
    source = CheckedKafkaSource(load_settings(environ), ["alarmflow.alert"])
    return source._add_config.get("fetch.wait.max.ms")


def test_a_run_that_reads_to_the_end_sees_the_end_without_the_brokers_long_wait():
    assert fetch_wait(ALARMFLOW_TAIL="0") == END_FETCH_WAIT_MS
    assert fetch_wait(ALARMFLOW_TAIL="1") is None  # librdkafka's own, for a tailing run


def test_kafka_config_sets_another_fetch_wait():
    setting = '{"fetch.wait.max.ms": 250}'
    assert fetch_wait(ALARMFLOW_TAIL="0", ALARMFLOW_KAFKA_CONFIG=setting) == "250"
