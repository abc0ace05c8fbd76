"""Second-level business summaries (``converge_manger.push_to_sub_converge_queue``)."""

from __future__ import annotations

from dataclasses import replace

from operators.converge.biz import Business
from operators.converge.records import Decision, Verdict
from tests.operators.converge.timeline import T0, at, push, scenario

NOTICE = {
    "is_enabled": True,
    "converge_func": "collect",
    "timedelta": 60,
    "count": 1,
    "need_biz_converge": True,
    "sub_converge_config": {"converge_func": "collect_alarm", "count": 2, "timedelta": 60},
}


def notice(action_id: int, strategy: int):
    return push(
        action_id,
        strategy_id=strategy,
        plugin_type="notice",
        notice_way="mail",
        notice_receiver=["bob"],
        converge_config=NOTICE,
    )


def storm(strategies: int):
    events = []
    for s in range(strategies):
        events += [at(s * 10 + k, notice(s * 10 + k + 1, s + 1)) for k in range(3)]
    return scenario(*events, until=1000)


def test_three_converges_in_one_window_give_one_business_summary():
    timeline, decisions = storm(3)
    assert [kind for _, _, kind in timeline].count("execute") == 3
    assert [kind for _, _, kind in timeline].count("skipped") == 6
    late = [d for d in decisions if d.time >= T0 + 180]
    assert [d.decision for d in late] == ["suppressed"] * 3 + ["collect"]
    summary = late[-1]
    assert (summary.time - T0, summary.function) == (180, "collect_alarm")
    assert summary.skipped == (2, 3, 12, 13, 22, 23)
    assert summary.id == f"collect.biz:2.abnormal.mail.bob.1@{T0}"


def test_two_converges_keep_their_own_summaries_released_when_the_window_is_decided():
    _, decisions = storm(2)
    collects = [d for d in decisions if d.decision == "collect"]
    assert [(d.time - T0, d.skipped) for d in collects] == [(60, (2, 3)), (70, (12, 13))]
    assert decisions[-2:] == collects, "held until the window was decided at 180 s"
    assert not [d for d in decisions if d.decision == "suppressed"]


def test_a_window_waits_for_every_owed_summary_and_for_its_end():
    _, decisions = storm(3)
    opened = [d for d in decisions if d.opened]
    summaries = {d.converge_id: d for d in decisions if d.decision == "suppressed"}
    business = Business()
    for d in opened:
        business.take(d)
    first, *others = sorted(summaries.values(), key=lambda d: d.converge_id)
    collect = replace(first, id=f"collect.{first.converge_id}", decision="collect", time=T0 + 400)
    assert business.take(collect) == [], "two summaries are still owed"
    out = []
    for d in others:
        out += business.take(replace(d, decision="collect", skipped=()))
    assert [d.decision for d in out] == ["suppressed", "collect"]
    assert not business.windows


def test_a_savepoint_is_what_the_business_was_before_taking_the_decision():
    _, decisions = storm(3)
    business = Business()
    for d in decisions:
        before = business.copy()
        point = business.savepoint(d)
        business.take(d)
        assert point == before


def test_a_decision_dated_ahead_of_now_does_not_close_the_windows_of_its_business():
    """Live, each decision is taken at about its own time; one dated an hour ahead (the time
    window takes it) moves the business's clock only to now, so the window of now still waits
    for its third converge and becomes one business summary (``push_to_sub_converge_queue``),
    rather than closing early on two and releasing each converge's own summary."""
    start, biz = T0 // 120 * 120, "2.abnormal.mail.alice.1"

    def decided(id_: str, converge: str, verdict: Verdict, t: float, **more) -> Decision:
        fields = (id_, 1, ("a",), converge, converge, "collect", verdict, "", t)
        return Decision(*fields, biz=biz, **more)

    def opened(converge: str, t: float) -> Decision:
        return decided(f"{converge}.1", converge, Verdict.EXECUTE, t, opened=True)

    def summary(converge: str, t: float) -> Decision:
        skipped = (int(converge[1:]),)
        return decided(f"collect.{converge}", converge, Verdict.COLLECT, t, skipped=skipped)

    live = [opened("c1", start), opened("c2", start + 10), summary("c1", start + 60)]
    live += [summary("c2", start + 70), opened("c3", start + 100), summary("c3", start + 160)]
    live += [decided("98.1", "", Verdict.EXECUTE, start + 400)]
    business = Business()
    out = business.take(decided("99.1", "", Verdict.EXECUTE, start + 3500), now=start)
    for decision in live:
        out += business.take(decision, now=decision.time)
    summaries = [(d.decision, d.id) for d in out if d.decision in (Verdict.COLLECT, "suppressed")]
    assert summaries == [
        ("suppressed", "suppressed.c1"),
        ("suppressed", "suppressed.c2"),
        ("suppressed", "suppressed.c3"),
        ("collect", f"collect.biz:{biz}@{start}"),
    ]
