"""The report's normalisation and key kinds."""

from __future__ import annotations

import orjson

from alarmflow.report import _kind, _normalise


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
