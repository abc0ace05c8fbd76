"""Guarded steps in-process (``bytewax.testing``): a failing record is rejected, the rest go on,
and a keyed step keeps its state as it was before the record it rejected."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import bytewax.operators as op
import pytest
import redis
from bytewax.dataflow import Dataflow
from bytewax.errors import BytewaxRuntimeError
from bytewax.testing import TestingSink, TestingSource, run_main

from flows.guard import GuardedLogic, guarded_map, guarded_stateful_map
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


def count(state: int | None, _record: SourceRecord) -> tuple[int, list[int]]:
    return (state or 0) + 1, [(state or 0) + 1]


@pytest.mark.parametrize(
    ("keep", "expected"),
    [(None, [1, 2, 3]), (lambda _state: 3600.0, [1, 2, 3]), (lambda _state: 0.0, [1, 1, 1])],
)
def test_a_key_whose_state_is_kept_for_a_while_forgets_it_after_that_while(keep, expected):
    """The state of a key left without items for ``keep(state)`` seconds is discarded: here a
    count of three items with a pause of the input between them, kept for ever, an hour, or
    not at all."""
    oks: list = []
    flow = Dataflow("keep")
    pause = TestingSource.PAUSE(timedelta(milliseconds=20))
    items = [source(1), pause, source(2), pause, source(3)]
    up = op.input("in", flow, TestingSource(items))
    keyed = op.key_on("key", up, lambda _record: "one")
    split = guarded_stateful_map("count", keyed, count, lambda r: r, keep=keep)
    op.output("oks", split.oks, TestingSink(oks))
    run_main(flow)
    assert [n for _, n in oks] == expected


def count_below_four(state: int | None, record: SourceRecord) -> tuple[int, list[int]]:
    if record.offset == 4:
        raise Rejected(Reason.WRONG_TYPE, "four is not welcome")
    return count(state, record)


KEEP_SCENARIO = [
    # wall time, item's offset, outputs, state after it, when it is forgotten (60 s per count)
    (1000.0, 1, [1], 1, 1060.0),
    (1030.0, 2, [2], 2, 1150.0),
    (1100.0, 4, [Reason.WRONG_TYPE], 2, 1220.0),  # rejected: the state stays, its time moves
    (1300.0, 3, [3], 3, 1480.0),
]


def test_the_state_is_forgotten_its_while_after_the_last_item_on_a_virtual_clock():
    clock = [0.0]
    logic = GuardedLogic(
        "count", count_below_four, lambda r: r, None, lambda n: 60.0 * n, lambda: clock[0], None
    )
    for at, offset, outputs, state, forgotten_at in KEEP_SCENARIO:
        clock[0] = at
        out, keep = logic.on_item(source(offset))
        assert [o.reason if isinstance(o, Rejection) else o for o in out] == outputs
        assert (keep, logic.state) == (GuardedLogic.RETAIN, state)
        assert logic.notify_at() == datetime.fromtimestamp(forgotten_at, UTC)
    assert logic.on_notify() == ([], GuardedLogic.DISCARD)


def last_offset(_state: int | None, record: SourceRecord) -> tuple[int, list[int]]:
    return record.offset, [record.offset]


def kept_unless_two(state: int) -> float:
    if state == 2:
        raise ValueError("no while for two")
    return 60.0


def test_an_item_whose_new_state_keep_fails_on_is_rejected_and_the_flow_goes_on():
    """``keep`` fails on the state the item at offset 2 makes: that item is rejected (naming
    the step), its state undone, and the rest go on; before, Bytewax asked for the timer
    outside the guard and the exception stopped the flow."""
    oks, errs = run(
        lambda up: guarded_stateful_map(
            "last",
            op.key_on("key", up, lambda _record: "one"),
            last_offset,
            lambda r: r,
            keep=kept_unless_two,
        )
    )
    assert [n for _, n in oks] == [0, 1, 3, 4, 5]
    assert [(e.reason, e.record.offset) for e in errs] == [(Reason.INTERNAL_ERROR, 2)]
    assert errs[0].error == "last: ValueError: no while for two"


def test_a_resumed_state_keep_fails_on_is_kept_for_ever_with_a_warning(caplog):
    logic = GuardedLogic("last", last_offset, lambda r: r, None, kept_unless_two, lambda: 0.0, 2)
    assert logic.notify_at() is None
    assert "last: a resumed state is kept for ever, keep failed on it" in caplog.text
    out, keep = logic.on_item(source(9))
    assert (out, keep) == ([9], GuardedLogic.RETAIN)
    assert logic.notify_at() == datetime.fromtimestamp(60.0, UTC)
