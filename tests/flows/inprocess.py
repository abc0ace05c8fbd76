"""Run a flow's pipeline in-process with ``bytewax.testing``: Kafka records in, the pipeline's
Redis pushes and its rejections out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import bytewax.operators as op
import orjson
from bytewax.dataflow import Dataflow, Stream
from bytewax.testing import TestingSink, TestingSource, run_main

from flows.redis_sink import Routed
from operators.hashring import HashRing
from operators.rejects import Rejection, SourceRecord

RING_NODES = ("east", "west")

Pipeline = Callable[[Stream[SourceRecord]], tuple[Stream[Routed], list[Stream[Rejection]]]]


def run_pipeline(
    pipeline: Pipeline, messages: Sequence[Any], topic: str = "in"
) -> tuple[list[Routed], list[Rejection]]:
    """Feed ``messages`` (bytes as they are, anything else as JSON; offset = position, also
    the Kafka timestamp) through ``pipeline``."""
    records = [
        SourceRecord(topic, 0, offset, m if isinstance(m, bytes) else orjson.dumps(m), offset)
        for offset, m in enumerate(messages)
    ]
    flow = Dataflow("in_process")
    routed, errs = pipeline(op.input("in", flow, TestingSource(records)))
    pushes: list[Routed] = []
    rejected: list[Rejection] = []
    op.output("pushes", routed, TestingSink(pushes))
    op.output("rejected", op.merge("errs", *errs), TestingSink(rejected))
    run_main(flow)
    return pushes, rejected


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
