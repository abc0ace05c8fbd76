"""The sample feeder of the compose stack, on the real broker."""

from __future__ import annotations

import subprocess
import sys

from alarmflow.kafka_tools import read_all
from tests.flows.flowrun import REPO, FlowEnv


def test_feed_creates_its_topics_and_sends_alerts_at_its_rate(
    kafka_broker, redis_server, key_prefix
):
    stem = key_prefix.split(".")[0]
    env = FlowEnv(
        kafka_broker.bootstrap,
        redis_server.url(9),
        key_prefix,
        {"ALERT": f"{stem}.alert"},
        f"{stem}.dlq",
    )
    subprocess.run(
        [sys.executable, "-m", "alarmflow.feed", "--rate", "20", "--seconds", "1.5"],
        env=env.environ(),
        cwd=REPO,
        check=True,
        timeout=60,
    )
    assert len(read_all(kafka_broker.bootstrap, f"{stem}.alert")) in (20, 40)
    assert read_all(kafka_broker.bootstrap, f"{stem}.dlq") == []
