"""The event flow's pipeline in-process (``bytewax.testing``), on the bundled strategies and
hosts: what each message becomes (Redis pushes or DLQ rejections), priority inhibition across
messages through the keyed state, and the hash ring split."""

from __future__ import annotations

import time

import bytewax.operators as op
import orjson
import pytest
from bytewax.dataflow import Stream

from alarmflow.config import load_settings
from flows.common import load_hosts, load_strategies
from flows.event import pipeline
from flows.kafka_io import Input
from flows.redis_sink import Routed
from operators.event import EventStrategies
from operators.event_access import EventAccess
from operators.event_records import format_time
from operators.rejects import Reason, Rejection
from state.idempotent import Op
from tests.flows.inprocess import assert_ring_splits, records, run_items

NOW = int(time.time()) - 60


def gse(ip: str, at: int, kind: int, **extra) -> dict:
    return {
        "server": ip,
        "utctime2": format_time(at),
        "value": [{"extra": {"type": kind, "host": ip, **extra}}],
    }


def disk_full(ip: str, at: int = NOW) -> dict:
    return gse(ip, at, 6, disk="/data", free=3, file_system="/dev/vdb1", fstype="ext4")


def clock() -> float:
    """A fixed access time after every event's, so that two runs' anomalies are equal."""
    return NOW + 10.0


def run(messages: list, *later: list, **environ: str) -> tuple[list[Routed], list[Rejection]]:
    """``messages`` through the pipeline as one batch, as the Kafka source hands it on, then
    each of the ``later`` batches (their records' offsets go on from the earlier ones); the
    pipeline's batches of writes taken apart."""
    settings = load_settings(environ)
    hosts, strategies = load_hosts(settings), EventStrategies(load_strategies(settings))
    access = EventAccess(settings, hosts, strategies)
    every = records([m for batch in (messages, *later) for m in batch])
    batches, start = [], 0
    for batch in (messages, *later):
        batches.append(every[start : start + len(batch)])
        start += len(batch)
    sharded = settings.shard() is not None

    def each_record(up: Stream[list[Input]]) -> tuple[Stream[Routed], list[Stream[Rejection]]]:
        routed, rejected = pipeline(up, access, sharded, clock)
        return op.flat_map("each", routed, lambda batch: batch), rejected

    return run_items(each_record, batches)


def queued(pushes: list[Routed]) -> list[str]:
    """The anomaly lists the pushes write to, in order."""
    return [w.key for r in pushes for w in r.push.writes if w.op is Op.LPUSH]


def test_messages_become_pushes_or_rejections():
    messages = [
        disk_full("10.0.0.2"),
        b"not json",
        {**disk_full("10.0.0.2"), "utctime2": 2**63 - 1},
        disk_full("10.0.0.2", NOW + 7200),
        {"_server_": "10.0.0.41", "_cloudid_": 0, "_utctime_": format_time(NOW), "_value_": ["x"]},
    ]
    pushes, rejected = run(messages)
    assert sorted(queued(pushes)) == [
        "bk_bkmonitorv3.ee.detect.anomaly.list.303.3031",
        "bk_bkmonitorv3.ee.detect.anomaly.list.313.3131",
    ]
    assert sorted((r.record.offset, r.reason) for r in rejected) == [
        (1, Reason.NOT_JSON),
        (2, Reason.OUT_OF_RANGE),
        (3, Reason.FUTURE_TIME),
    ]


def test_poison_pills_of_issue_10_are_rejected_and_the_flow_goes_on():
    """A field nested 1,000 levels deep (it raised RecursionError while building the error
    text) and a time of 2^63-1 (``year out of range``) each become one DLQ record."""
    custom = {"_server_": "10.0.0.41", "_cloudid_": 0, "_utctime_": format_time(NOW)}
    deep = b"[" * 1000 + b"1" + b"]" * 1000
    messages = [
        orjson.dumps({**custom, "_value_": ["x"]})[:-1] + b', "nested": ' + deep + b"}",
        {**custom, "_value_": ["x"], "_utctime_": 2**63 - 1},
        {**custom, "_value_": ["still here"]},
    ]
    pushes, rejected = run(messages)
    assert [(r.record.offset, r.reason) for r in rejected] == [
        (0, Reason.TOO_DEEP),
        (1, Reason.OUT_OF_RANGE),
    ]
    assert all(len(r.error) <= 300 for r in rejected)
    assert queued(pushes) == ["bk_bkmonitorv3.ee.detect.anomaly.list.313.3131"]


@pytest.mark.parametrize("split", [3, 1], ids=["one batch", "two batches"])
def test_priority_inhibits_across_messages_through_the_group_state(split):
    """Strategies 303 (priority 10) and 304 (priority 20, set 1 and disk /data) share the
    group ``disk_full``. 10.0.0.1 is in set 1: its first event claims the series for 304 and
    inhibits 303; a later event on it within 5 intervals inhibits 303 again, in the same
    batch or a later one. 10.0.0.2 (set 2) only matches 303."""
    messages = [disk_full("10.0.0.1"), disk_full("10.0.0.1", NOW + 5), disk_full("10.0.0.2")]
    pushes, rejected = run(messages[:split], messages[split:])
    assert rejected == []
    p = "bk_bkmonitorv3.ee.detect.anomaly.list"
    assert sorted(queued(pushes)) == [f"{p}.303.3031", f"{p}.304.3041", f"{p}.304.3041"]
    claims = [(w.key, w.value) for r in pushes for w in r.push.writes if w.op is Op.HSET]
    assert sorted(value for _, value in claims) == sorted(
        [f"10:{NOW}", f"20:{NOW}", f"20:{NOW + 5}"]
    )
    assert {key for key, _ in claims} == {"bk_bkmonitorv3.ee.access.data.priority.disk_full"}


def test_two_deployments_on_the_ring_together_write_what_one_writes():
    custom = [
        {"_server_": f"10.0.0.{h}", "_cloudid_": 0, "_utctime_": format_time(NOW), "_value_": ["x"]}
        for h in (1, 2, 41, 42, 99)
    ]
    messages = [disk_full("10.0.0.1"), disk_full("10.0.0.2"), *custom]
    assert_ring_splits(run, messages, _biz)


def _biz(routed: Routed) -> int:
    snapshot = next(w for w in routed.push.writes if w.op is Op.SET)
    return orjson.loads(snapshot.value)["bk_biz_id"]
