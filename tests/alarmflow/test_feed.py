"""The sample feeder of the compose stack, on the real broker."""

from __future__ import annotations

import subprocess
import sys

from alarmflow.kafka_tools import read_all
from tests.flows.flowrun import REPO


def test_feed_creates_the_flows_topics_and_sends_alerts_at_its_rate(kafka_broker, flow_env):
    env = flow_env
    subprocess.run(
        [sys.executable, "-m", "alarmflow.feed", "--rate", "20", "--seconds", "1.5"],
        env=env.environ(ALARMFLOW_INCIDENT_TOPICS=f"{env.topics['ALERT']}.incidents"),
        cwd=REPO,
        check=True,
        timeout=60,
    )
    assert len(read_all(kafka_broker.bootstrap, env.topics["ALERT"])) in (20, 40)
    assert read_all(kafka_broker.bootstrap, env.dlq_topic) == []
    assert read_all(kafka_broker.bootstrap, f"{env.topics['ALERT']}.incidents") == []


def test_a_topic_kafka_refuses_to_create_stops_the_feed_in_one_line(kafka_broker, flow_env):
    done = subprocess.run(
        [sys.executable, "-m", "alarmflow.feed", "--seconds", "1"],
        env=flow_env.environ(ALARMFLOW_DECISION_TOPIC="bad name"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"alarmflow.feed: cannot start: Kafka at {kafka_broker.bootstrap}: topic 'bad name' not "
        "created: Topic name is invalid: 'bad name' contains one or more characters other than "
        "ASCII alphanumerics, '.', '_' and '-'"
    ]
