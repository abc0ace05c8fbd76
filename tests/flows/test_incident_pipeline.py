"""The incident flow's pipeline in-process (``bytewax.testing``): the per-incident state across
messages, updates before creates, rejections that leave the state as it was, and the hash
ring split."""

from __future__ import annotations

import orjson

from alarmflow.config import load_settings
from flows.incident import kept_for, pipeline
from flows.redis_sink import Routed
from operators.incident import IncidentState
from operators.rejects import Reason, Rejection
from state.idempotent import Op
from state.keys import INCIDENT_DOC_KEY
from tests.flows.inprocess import assert_ring_splits, run_pipeline

T0 = 1_800_000_000


def sync(incident: int, sync_type: str, at: int, biz: int = 2, **extra) -> dict:
    info = {"bk_biz_id": biz, "status": "abnormal", "create_time": T0, "update_time": at}
    return {
        "incident_id": incident,
        "sync_type": sync_type,
        "incident_info": {**info, "level": "ERROR", **extra.pop("info", {})},
        "fpp_snapshot_id": "fpp:None",
        "rca_time": at,
        "scope": {"bk_biz_ids": [biz], "alerts": [f"a{incident}"], "events": []},
        **extra,
    }


def run(messages: list, **environ: str) -> tuple[list[Routed], list[Rejection]]:
    settings = load_settings(environ)
    return run_pipeline(lambda up: pipeline(up, settings), messages)


def documents(pushes: list[Routed]) -> list[dict]:
    return [orjson.loads(w.value) for r in pushes for w in r.push.writes if w.op is Op.SET]


def test_updates_fold_into_the_incident_state_in_order():
    level = {"level": {"from": "ERROR", "to": "WARN"}}
    recover = {"status": {"from": "abnormal", "to": "recovered"}}
    messages = [
        sync(1, "update", T0 + 5, update_attributes=level),  # before its create: created as is
        sync(1, "update", T0 + 9, info={"status": "recovered"}, update_attributes=level),
        b"{truncated",
        sync(1, "update", T0 + 20, update_attributes={"status": {"from": "x", "to": "gone"}}),
        sync(1, "update", T0 + 30, update_attributes=recover),
    ]
    pushes, rejected = run(messages)
    assert [(r.record.offset, r.reason) for r in rejected] == [
        (2, Reason.NOT_JSON),
        (3, Reason.WRONG_TYPE),
    ]
    first, second, third = documents(pushes)
    assert (first["level"], first["status"]) == ("ERROR", "abnormal")
    assert (second["level"], second["status"], second["update_time"]) == (
        "WARN",
        "abnormal",
        T0 + 5,
    )
    assert (third["level"], third["status"], third["end_time"]) == ("WARN", "recovered", T0 + 30)


def test_two_deployments_on_the_ring_together_write_what_one_writes():
    messages = [sync(i, "create", T0 + i, biz=biz) for i, biz in enumerate((2, 3, 4, 5, 6, 7))]
    assert_ring_splits(run, messages, lambda r: documents([r])[0]["bk_biz_id"])


def test_a_final_incident_is_kept_as_long_as_redis_keeps_its_document_an_open_one_for_ever():
    assert kept_for(IncidentState({"status": "merged"}, ())) == INCIDENT_DOC_KEY.ttl == 7 * 86400
    assert kept_for(IncidentState({"status": "abnormal"}, ())) is None
