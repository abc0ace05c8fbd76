"""Run a flow's pipeline in-process with ``bytewax.testing``: Kafka records in, the pipeline's
Redis pushes and its rejections out; and what the bundled CMDB hosts enrich a time-series
record's dimensions with."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import bytewax.operators as op
import orjson
from bytewax.dataflow import Dataflow, Stream
from bytewax.recovery import RecoveryConfig
from bytewax.testing import TestingSink, TestingSource, run_main

from flows.redis_sink import Routed
from operators.hashring import HashRing
from operators.md5 import count_md5
from operators.rejects import Rejection, SourceRecord
from state.idempotent import Push

RING_NODES = ("east", "west")

Pipeline = Callable[[Stream[Any]], tuple[Stream[Routed], list[Stream[Rejection]]]]


def records(messages: Sequence[Any], topic: str = "in") -> list[SourceRecord]:
    """Kafka records of ``messages`` (bytes as they are, anything else as JSON); offset =
    position, also the Kafka timestamp."""
    return [
        SourceRecord(topic, 0, offset, m if isinstance(m, bytes) else orjson.dumps(m), offset)
        for offset, m in enumerate(messages)
    ]


def run_items(
    pipeline: Pipeline, items: Sequence[Any], recovery: RecoveryConfig | None = None
) -> tuple[list[Routed], list[Rejection]]:
    """The pushes and rejections of ``pipeline`` over its input ``items``, in order (resumed
    from, and snapshotted to, ``recovery`` when given)."""
    flow = Dataflow("in_process")
    routed, errs = pipeline(op.input("in", flow, TestingSource(items)))
    pushes: list[Routed] = []
    rejected: list[Rejection] = []
    op.output("pushes", routed, TestingSink(pushes))
    op.output("rejected", op.merge("errs", *errs), TestingSink(rejected))
    run_main(flow, recovery_config=recovery)
    return pushes, rejected


def run_pipeline(
    pipeline: Pipeline, messages: Sequence[Any], topic: str = "in"
) -> tuple[list[Routed], list[Rejection]]:
    """``pipeline`` over the Kafka records of ``messages``."""
    return run_items(pipeline, records(messages, topic))


def run_points(
    pipeline: Pipeline,
    messages: list[dict],
    recovery: RecoveryConfig | None = None,
    per_batch: int | None = None,
) -> tuple[list[Push], list[Rejection]]:
    """A time-series ``pipeline`` over metric messages in batches as the Kafka source hands
    them on, ``per_batch`` each (all in one by default); its batches of writes taken apart."""
    found = records(messages)
    size = per_batch or max(len(found), 1)
    batches = [found[i : i + size] for i in range(0, len(found), size)]

    def each_record(up: Stream[Any]) -> tuple[Stream[Routed], list[Stream[Rejection]]]:
        written, rejected = pipeline(up)
        return op.flat_map("each", written, lambda batch: batch), rejected

    routed, rejected = run_items(each_record, batches, recovery)
    return [r.push for r in routed], rejected


def assert_ring_splits(
    run: Callable[..., tuple[list[Routed], list[Rejection]]],
    messages: Sequence[Any],
    business: Callable[[Routed], object],
) -> None:
    """Two deployments on the hash ring (``east``, ``west``) together push exactly what one
    deployment pushes, each only the businesses the ring gives it."""
    one, _ = run(messages)
    ring = {"ALARMFLOW_HASH_RING_NODES": ",".join(RING_NODES)}
    shards = {node: run(messages, **ring, ALARMFLOW_HASH_RING_NODE=node)[0] for node in RING_NODES}
    assert sorted(r.push for pushes in shards.values() for r in pushes) == sorted(
        r.push for r in one
    )
    owner = HashRing(RING_NODES)
    for node, pushes in shards.items():
        assert {owner.get_node(str(business(r))) for r in pushes} == {node}


HOST_7 = {
    "bk_target_ip": "10.0.0.7",
    "bk_target_cloud_id": "0",
    "bk_topo_node": ["biz|2", "module|100", "set|1"],
    "bk_host_id": 7,
}
"""The dimensions of host 10.0.0.7 once ``TopoNodeFuller`` filled them from the host table."""


def host_7_record(at: int, value: float, values: dict) -> dict:
    """The standard data record of host 10.0.0.7 (group-by ``bk_target_ip``,
    ``bk_target_cloud_id``) at ``at``, without its ``access_time``."""
    md5 = count_md5({"bk_target_ip": "10.0.0.7", "bk_target_cloud_id": "0"})
    return {
        "time": at,
        "value": value,
        "values": {**values, "time": at},
        "dimensions": HOST_7,
        "record_id": f"{md5}.{at}",
        "dimension_fields": ["bk_target_ip", "bk_target_cloud_id"],
    }
