"""The report's normalisation, key kinds and dead-letter reasons."""

from __future__ import annotations

import orjson
import pytest

from alarmflow.config import load_settings
from alarmflow.kafka_tools import produce
from alarmflow.report import NOT_DEAD_LETTER, _kind, _normalise, dlq_reasons
from operators.rejects import Reason, Rejection, SourceRecord


def test_normalise_drops_handling_times_also_inside_anomalies_and_their_data():
    element = {
        "data": {"time": 1, "access_time": 5},
        "anomaly": {"2": {"anomaly_id": "m.1.31.53.2", "anomaly_time": "2024-05-01 08:00:03"}},
        "access_time": 7,
    }
    assert orjson.loads(_normalise(orjson.dumps(element))) == {
        "data": {"time": 1},
        "anomaly": {"2": {"anomaly_id": "m.1.31.53.2"}},
    }
    assert _normalise(b"31.53") == "31.53"


def test_kinds_of_event_keys_including_the_prefixed_check_result_template():
    assert _kind("p.detect.result.31.53.abc.2", "zset", "p") == "CHECK_RESULT_CACHE_KEY"
    assert _kind("p.detect.anomaly.signal", "list", "p") == "ANOMALY_SIGNAL_KEY"
    assert _kind("p.detect.last.checkpoint.31.53", "hash", "p") == "LAST_CHECKPOINTS_CACHE_KEY"


@pytest.mark.integration
def test_a_message_of_the_dead_letter_topic_that_is_no_dead_letter_record_is_counted_apart(
    flow_env,
):
    rejection = Rejection(Reason.NOT_JSON, "bad", SourceRecord("in", 0, 7, b"{"))
    others = [b'{"alert_name": "x"}', b"not json", b"[1]", b'{"reason": 3}']
    produce(flow_env.bootstrap, flow_env.dlq_topic, [rejection.to_dlq("alert"), *others])

    reasons = dlq_reasons(load_settings(flow_env.environ()))

    assert reasons == {str(Reason.NOT_JSON): 1, NOT_DEAD_LETTER: 4}
