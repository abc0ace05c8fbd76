"""The alert flow's pipeline in-process (``bytewax.testing``), on the bundled strategies: what
each message becomes (Redis pushes or DLQ rejections) and the hash ring split. The same inputs
and expectations as the real-broker test in ``test_alert.py``."""

from __future__ import annotations

from collections import Counter

import bytewax.operators as op
import orjson
from bytewax.dataflow import Stream

from alarmflow.config import load_settings
from flows.alert import pipeline
from flows.common import load_strategies
from flows.kafka_io import Input
from flows.redis_sink import Routed
from operators.alert_access import AlertAccess
from operators.rejects import Rejection
from state.idempotent import Op
from tests.flows.inprocess import assert_ring_splits, records, run_items
from tests.flows.test_alert import BAD, EXPECTED_LISTS, NOW, VALID

PREFIX = "bk_bkmonitorv3.ee."


def run(messages: list, **environ: str) -> tuple[list[Routed], list[Rejection]]:
    """One batch of ``messages`` through the pipeline, as the Kafka source hands it on; the
    pipeline's batches of writes taken apart."""
    settings = load_settings(environ)
    access = AlertAccess.from_settings(settings, load_strategies(settings))
    sharded = settings.shard() is not None

    def each_record(up: Stream[list[Input]]) -> tuple[Stream[Routed], list[Stream[Rejection]]]:
        batches, rejected = pipeline(up, access, sharded, lambda: NOW)
        return op.flat_map("each", batches, lambda batch: batch), rejected

    return run_items(each_record, [records(messages)])


def lists(pushes: list[Routed]) -> dict[str, list[str]]:
    """The alert lists the pushes write, each with the event ids pushed onto it."""
    found: dict[str, list[str]] = {}
    for routed in pushes:
        for write in routed.push.writes:
            if write.op is Op.LPUSH:
                event_id = orjson.loads(write.value)["event_id"]
                found.setdefault(write.key.removeprefix(PREFIX), []).append(event_id)
    return {key: sorted(ids) for key, ids in found.items()}


def test_messages_become_pushes_or_rejections():
    pushes, rejected = run([*VALID, *BAD])
    assert lists(pushes) == EXPECTED_LISTS
    assert Counter(str(r.reason) for r in rejected) == Counter(BAD.values())
    assert {r.record.offset for r in rejected} == set(range(len(VALID), len(VALID) + len(BAD)))


def test_two_deployments_on_the_ring_push_what_one_pushes():
    def business(routed: Routed) -> object:
        return orjson.loads(routed.push.writes[0].value)["bk_biz_id"]

    assert_ring_splits(run, VALID, business)
