"""A batch of converge decisions made into its messages and Redis writes
(``flows/converge_outputs.py``)."""

from __future__ import annotations

from dataclasses import replace

from flows.converge_outputs import Outcome, outputs, size
from operators.converge.context import parse_action
from operators.converge.driver import run
from tests.operators.converge.timeline import action_json


def test_a_decision_whose_outputs_cannot_be_made_is_dead_lettered_and_the_batch_goes_on():
    good, bad = run([parse_action(action_json(n, converge_config=None)) for n in (1, 2)])
    bad = replace(bad, alert_ids=(object(),))
    made = outputs("p", "converge", 1_000_000)(Outcome([good, bad]))
    assert [m[0] for m in made.decisions] == [m[0] for m in made.audit] == [good.id]
    assert [r.push.marker.key for r in made.routed] == [f"p.fta_action.converge.decision.{good.id}"]
    [rejected] = made.rejected
    assert rejected.error.startswith("outputs: TypeError")
    assert rejected.record.value == bad.id.encode()


def test_a_decision_whose_messages_would_be_too_large_to_produce_is_dead_lettered():
    small, big = run([parse_action(action_json(n, converge_config=None)) for n in (1, 2)])
    big = replace(big, alert_ids=tuple(f"{n:04d}" + "a" * 96 for n in range(20)))
    made = outputs("p", "converge", 1_500)(Outcome([big, small]))
    assert [m[0] for m in made.decisions] == [m[0] for m in made.audit] == [small.id]
    [rejected] = made.rejected
    assert (rejected.reason, rejected.record.value) == ("too_large", big.id.encode())
    assert "more than the 1500 a message may have" in rejected.error


def test_outputs_count_in_a_writer_s_queue_for_their_decisions_and_bytes():
    made = outputs("p", "converge", 1_000_000)(
        Outcome(run([parse_action(action_json(n, converge_config=None)) for n in (1, 2)]))
    )
    messages = sum(len(value) for _, value in (*made.decisions, *made.audit))
    values = sum(len(w.value) for r in made.routed for w in (r.push.marker, *r.push.writes))
    assert size([made, made]) == (2 * (1 + len(made.routed)), 2 * (messages + values))
