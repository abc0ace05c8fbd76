"""The event flow's batch work (``operators/event_access.py``): every record guarded on its own,
anomalies without a priority group out as writes, the others gathered per group in record order,
and each group's hash carried through its records, a failing record leaving it as it was.

Strategies, hosts and their expectations are those of ``test_event_priority.py`` (worked out
from bkmonitor's ``PriorityChecker``): 61 (priority 1) and 62 (priority 5) share group ``g``,
64 (priority 5) is alone in ``h``, 63 has no group and 65 (priority 0) never claims.
"""

from __future__ import annotations

import orjson

from alarmflow.config import load_settings
from operators.event import PriorityBatch
from operators.event_access import EventAccess
from operators.event_records import format_time
from operators.rejects import Reason, Rejection, SourceRecord
from state.idempotent import Op
from tests.operators.test_event_priority import HOSTS, STRATEGIES, T

NOW = T + 60


def event_access() -> EventAccess:
    return EventAccess(load_settings({"ALARMFLOW_KEY_PREFIX": "p"}), HOSTS, STRATEGIES)


def record(offset: int, message: object) -> SourceRecord:
    value = message if isinstance(message, bytes) else orjson.dumps(message)
    return SourceRecord("t", 0, offset, value, offset)


def custom(at: int, *texts: str) -> dict:
    return {"_server_": "10.0.0.7", "_utctime_": format_time(at), "_value_": list(texts)}


def anomaly_lists(pushes) -> list[str]:
    return sorted(w.key for push, _ in pushes for w in push.writes if w.op is Op.LPUSH)


def test_each_record_is_guarded_and_the_batch_goes_on():
    consumer_error = Rejection(Reason.KAFKA_ERROR, "broker", record(0, b""))
    inputs = [
        consumer_error,
        record(1, b"not json"),
        record(2, custom(T, "disk")),
        record(3, {**custom(T, "x"), "_utctime_": 2**63 - 1}),
        record(4, {"_server_": "10.9.9.9", "_utctime_": format_time(T), "_value_": ["who"]}),
    ]
    out = event_access()(inputs, NOW)
    assert [(r.record.offset, r.reason) for r in out.rejected] == [
        (0, Reason.KAFKA_ERROR),
        (1, Reason.NOT_JSON),
        (3, Reason.OUT_OF_RANGE),
    ]
    # Record 2 fans out to the five strategies: 63 without a group is written at once.
    assert anomaly_lists(out.pushes) == ["p.detect.anomaly.list.63.630"]
    assert [(r.offset, [a.strategy.id for a in b.anomalies]) for r, b in out.grouped["g"]] == [
        (2, [62, 61, 65])
    ]
    assert [(r.offset, b.group) for r, b in out.grouped["h"]] == [(2, "h")]
    assert (out.cleaned, out.ignored, dict(out.dropped)) == (5, 0, {"unknown_host": 1})


def test_a_group_keeps_its_hash_across_records_and_a_failing_record_leaves_it_as_it_was():
    access = event_access()
    first = access([record(0, custom(T, "a"))], NOW).grouped["g"]
    later = access([record(2, custom(T + 10, "a"))], NOW).grouped["g"]
    broken = (record(1, b"{}"), PriorityBatch("g", (None,), 60, T))  # not an anomaly: fails

    stored, out = access.prioritise(None, [*first, broken, *later])

    [rejection] = out.rejected
    assert (rejection.record.offset, rejection.reason) == (1, Reason.INTERNAL_ERROR)
    assert rejection.error.startswith("priority: AttributeError")
    # 62 claims the series at T and inhibits 61 at T and again at T + 10 (5 x 60 s later at
    # most); 65's priority 0 is lower than 62's too. 62 claims again at T + 10.
    assert anomaly_lists(out.pushes) == [
        "p.detect.anomaly.list.62.620",
        "p.detect.anomaly.list.62.620",
    ]
    assert out.inhibited == 4
    [md5] = stored
    assert stored == {md5: f"5:{T + 10}"}
    assert access.prioritise(None, [*first, *later])[0] == stored
