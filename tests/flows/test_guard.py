"""Guarded steps in-process (``bytewax.testing``): a failing record is rejected, the rest go on,
and a keyed step keeps its state as it was before the record it rejected."""

from __future__ import annotations

import bytewax.operators as op
import pytest
import redis
from bytewax.dataflow import Dataflow
from bytewax.errors import BytewaxRuntimeError
from bytewax.testing import TestingSink, TestingSource, run_main

from flows.guard import guarded_map, guarded_stateful_map
from operators.rejects import Reason, Rejected, Rejection, SourceRecord


def source(offset: int) -> SourceRecord:
    return SourceRecord("in", 0, offset, str(offset).encode())


def run(build) -> tuple[list, list[Rejection]]:
    oks: list = []
    errs: list[Rejection] = []
    flow = Dataflow("guard")
    split = build(op.input("in", flow, TestingSource([source(i) for i in range(6)])))
    op.output("oks", split.oks, TestingSink(oks))
    op.output("errs", split.errs, TestingSink(errs))
    run_main(flow)
    return oks, errs


def inverse(record: SourceRecord) -> float:
    if record.offset == 4:
        raise Rejected(Reason.WRONG_TYPE, "four is not welcome")
    return 1 / record.offset


def test_map_rejects_what_fails_and_keeps_the_rest():
    oks, errs = run(lambda up: guarded_map("inverse", up, inverse, lambda r: r))
    assert oks == [1 / 1, 1 / 2, 1 / 3, 1 / 5]
    assert [(e.reason, e.record.offset) for e in errs] == [
        (Reason.INTERNAL_ERROR, 0),
        (Reason.WRONG_TYPE, 4),
    ]
    assert errs[0].error == "inverse: ZeroDivisionError: division by zero"


def test_stateful_map_restores_the_state_of_a_rejected_record():
    def total(state: list[int] | None, record: SourceRecord) -> tuple[list[int], list[int]]:
        state = state if state is not None else []
        state.append(record.offset)  # changed in place before it fails
        inverse(record)
        return state, [sum(state)]

    def build(up):
        keyed = op.key_on("key", up, lambda _record: "one")
        return guarded_stateful_map("total", keyed, total, lambda r: r)

    oks, errs = run(build)
    assert oks == [("one", 1), ("one", 3), ("one", 6), ("one", 11)]
    assert [e.record.offset for e in errs] == [0, 4]


def test_infrastructure_failures_stop_the_flow():
    def unreachable(_record: SourceRecord) -> None:
        raise redis.ConnectionError("Connection refused")

    with pytest.raises(BytewaxRuntimeError) as caught:
        run(lambda up: guarded_map("write", up, unreachable, lambda r: r))
    causes = []
    exc: BaseException | None = caught.value
    while exc is not None:
        causes.append(exc)
        exc = exc.__cause__
    assert any(isinstance(cause, redis.ConnectionError) for cause in causes)
