"""The converge flow's intake of a batch: each record decoded, parsed, planned and sharded, or
rejected naming its stage, and the batch goes on."""

from __future__ import annotations

import orjson

from operators.bounds import TimeWindow
from operators.converge.context import parse_action
from operators.converge.intake import Planner
from operators.converge.plan import plan
from operators.rejects import Reason, Rejection, SourceRecord
from tests.operators.converge.timeline import T0, action_json

WINDOW = TimeWindow(past_s=3600, future_s=60)


def record(offset: int, value: bytes) -> SourceRecord:
    return SourceRecord("actions", 0, offset, value)


def test_a_batch_keeps_this_shard_s_actions_in_order_and_rejects_what_it_cannot_take():
    unread = Rejection(Reason.KAFKA_ERROR, "broker", record(0, b""))
    mine, theirs, later = (action_json(n, bk_biz_id=2 if n != 2 else 3) for n in (1, 2, 3))
    inputs = [
        unread,
        record(1, orjson.dumps(mine)),
        record(2, b"{not json"),
        record(3, orjson.dumps(theirs)),
        record(4, orjson.dumps({**later, "create_time": T0 - 7200})),
        record(5, orjson.dumps(later)),
    ]
    out = Planner(WINDOW, 10_000, owns=lambda biz: biz == 2)(inputs, T0)

    expected = [plan(parse_action(m)) for m in (mine, later)]
    assert [(key, p.plan) for key, p in out.keyed] == [(p.key, p) for p in expected]
    assert [p.source.offset for _, p in out.keyed] == [1, 5]
    assert out.rejected[0] is unread
    assert [r.reason for r in out.rejected[1:]] == [Reason.NOT_JSON, Reason.TOO_OLD]
    assert [r.record.offset for r in out.rejected[1:]] == [2, 4]
    assert (out.parsed, out.other_shard) == (3, 1)


def test_a_shard_check_that_fails_rejects_the_record_naming_the_stage():
    def broken(biz: object) -> bool:
        raise KeyError(biz)

    out = Planner(WINDOW, 10_000, owns=broken)([record(7, orjson.dumps(action_json(1)))], T0)
    [rejected] = out.rejected
    assert rejected.reason == Reason.INTERNAL_ERROR and rejected.error.startswith("shard: KeyError")
    assert out.keyed == [] and out.parsed == 1
