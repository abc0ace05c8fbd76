"""The converge flow's Redis writes: index trim and entries, the notice-collect pool, audit
records, one marker per decision; on the real Redis through the push-once script."""

from __future__ import annotations

from dataclasses import replace

import orjson
import pytest

from operators.converge.audit import audit_record
from operators.converge.records import Decision, IndexEntry, NoticeCollect, Verdict
from state.converge_writes import INDEX_KEEP_S, DecisionWrites
from state.idempotent import DUPLICATE, OncePusher, Op
from state.keys import Backend

NOW = 1_700_000_130.0
DECISION = Decision(
    id="11.2",
    action_id=11,
    alert_ids=("a1", "a2"),
    converge_id="!sha1#x@11",
    dimension="!sha1#x",
    function="collect",
    decision=Verdict.EXECUTE,
    reason="collect: execute",
    time=NOW,
    index=(IndexEntry(5, "action_info", "5_abnormal_7"),),
    create_time=NOW - 10,
    notice=NoticeCollect("abnormal", "user_mail", "a1_a2", "bob,al"),
)


def audit(decision: Decision) -> bytes:
    return orjson.dumps(audit_record(decision))


def test_trim_index_notice_then_one_audit_record_per_alert():
    push = DecisionWrites("p")(DECISION, audit(DECISION))
    assert (push.marker.op, push.marker.key) == (Op.MARK, "p.fta_action.converge.decision.11.2")
    trim, index, notice, *audits = push.writes
    key = "p.fta_action.converge.5.action_info.5_abnormal_7"
    assert (trim.op, trim.key, trim.param, trim.value, trim.ttl) == (
        Op.ZTRIM,
        key,
        str(int(NOW) - 365 * 86400),
        str(int(NOW) - 216_000),
        0,
    )
    assert (index.op, index.key, index.value, index.param, index.ttl) == (
        Op.ZADD,
        key,
        "action_11",
        str(NOW - 10),
        1800,
    )
    assert (notice.op, notice.key, notice.param, notice.value, notice.ttl) == (
        Op.HMAX,
        "p.fta_action.notice.abnormal.user_mail.a1_a2",
        "bob,al",
        "11",
        86400,
    )
    assert [w.key for w in audits] == ["p.fta_action.audit.a1", "p.fta_action.audit.a2"]
    record = orjson.loads(audits[0].value)
    assert (record["decision_id"], record["decision"]) == ("11.2", "execute")
    assert {w.backend for w in push.writes} == {Backend.SERVICE}


@pytest.mark.integration
def test_on_redis_expired_index_members_are_removed_before_the_zadd(service_client, key_prefix):
    """``DimensionCalculator.calc_dimension``: ZREMRANGEBYSCORE (now - 1 year, now - 3600
    minutes), ZADD, EXPIRE 1800."""
    key = f"{key_prefix}.fta_action.converge.5.action_info.5_abnormal_7"
    old, kept = NOW - INDEX_KEEP_S - 1, NOW - INDEX_KEEP_S + 1
    service_client.zadd(key, {"action_1": old, "action_2": kept, "action_3": NOW - 400 * 86400})
    pusher = OncePusher(service_client, {Backend.SERVICE: 10})
    assert pusher.push([DecisionWrites(key_prefix)(DECISION, audit(DECISION))]) == [0]
    members = service_client.zrange(key, 0, -1, withscores=True)
    assert members == [
        (b"action_3", NOW - 400 * 86400),
        (b"action_2", kept),
        (b"action_11", NOW - 10),
    ]
    assert 0 < service_client.ttl(key) <= 1800
    notice = f"{key_prefix}.fta_action.notice.abnormal.user_mail.a1_a2"
    assert service_client.hgetall(notice) == {b"bob,al": b"11"}
    older = replace(DECISION, id="10.1", action_id=10)
    pusher.push([DecisionWrites(key_prefix)(older, audit(older))])
    assert service_client.hgetall(notice) == {b"bob,al": b"11"}, "the newest action stays"
    assert 0 < service_client.ttl(notice) <= 86400
    assert pusher.push([DecisionWrites(key_prefix)(DECISION, audit(DECISION))]) == [DUPLICATE]
