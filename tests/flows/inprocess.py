"""Running a time-series pipeline in-process with ``bytewax.testing``, and what the bundled
CMDB hosts enrich a record's dimensions with."""

from __future__ import annotations

from collections.abc import Callable

import bytewax.operators as op
import orjson
from bytewax.dataflow import Dataflow, Stream
from bytewax.recovery import RecoveryConfig
from bytewax.testing import TestingSink, TestingSource, run_main

from flows.points import Parsed
from flows.redis_sink import Routed
from operators.md5 import count_md5
from operators.records import parse_point
from operators.rejects import Rejection, SourceRecord
from state.idempotent import Push

Pipeline = Callable[[Stream[Parsed]], tuple[Stream[Routed], list[Stream[Rejection]]]]

HOST_7 = {
    "bk_target_ip": "10.0.0.7",
    "bk_target_cloud_id": "0",
    "bk_topo_node": ["biz|2", "module|100", "set|1"],
    "bk_host_id": 7,
}
"""The dimensions of host 10.0.0.7 once ``TopoNodeFuller`` filled them from the host table."""


def run_pipeline(
    pipeline: Pipeline, messages: list[dict], recovery: RecoveryConfig | None = None
) -> tuple[list[Push], list[Rejection]]:
    """The pushes and rejections of ``pipeline`` over the metric messages, in order (resumed
    from, and snapshotted to, ``recovery`` when given)."""
    inputs = [
        (SourceRecord("in", 0, offset, orjson.dumps(m)), parse_point(m))
        for offset, m in enumerate(messages)
    ]
    flow = Dataflow("in_process")
    routed, errs = pipeline(op.input("in", flow, TestingSource(inputs)))
    pushes: list[Routed] = []
    rejections: list[Rejection] = []
    op.output("pushes", routed, TestingSink(pushes))
    op.output("rejections", op.merge("errs", *errs), TestingSink(rejections))
    run_main(flow, recovery_config=recovery)
    return [r.push for r in pushes], rejections


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
