"""The incident flow's pipeline in-process (``bytewax.testing``): the per-incident state across
messages, updates before creates, rejections that leave the state as it was, and the hash
ring split."""

from __future__ import annotations

import bytewax.operators as op
import orjson
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main

from alarmflow.config import load_settings
from flows.incident import pipeline
from flows.redis_sink import Routed
from operators.hashring import HashRing
from operators.rejects import Reason, Rejection, SourceRecord
from state.idempotent import Op

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
    records = [
        SourceRecord("incidents", 0, offset, m if isinstance(m, bytes) else orjson.dumps(m))
        for offset, m in enumerate(messages)
    ]
    flow = Dataflow("incident_pipeline")
    routed, errs = pipeline(op.input("in", flow, TestingSource(records)), load_settings(environ))
    pushes: list[Routed] = []
    rejected: list[Rejection] = []
    op.output("pushes", routed, TestingSink(pushes))
    op.output("rejected", op.merge("errs", *errs), TestingSink(rejected))
    run_main(flow)
    return pushes, rejected


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
    one, _ = run(messages)
    ring = {"ALARMFLOW_HASH_RING_NODES": "east,west"}
    east, _ = run(messages, **ring, ALARMFLOW_HASH_RING_NODE="east")
    west, _ = run(messages, **ring, ALARMFLOW_HASH_RING_NODE="west")
    assert sorted(r.push for r in east + west) == sorted(r.push for r in one)
    owner = HashRing(["east", "west"])
    for node, pushes in (("east", east), ("west", west)):
        assert {owner.get_node(str(d["bk_biz_id"])) for d in documents(pushes)} == {node}
