"""Priority inhibition of event anomalies (bkmonitor's ``access/priority.py``).

Each expectation is worked out by hand from ``PriorityChecker.check_records`` (event records
sorted by strategy priority, highest first; per item: no entry → pass and claim; an entry
younger than 5 x interval with a higher priority → inhibited; else pass and claim; priority 0
never claims) and ``sync_priority`` (entries older than 10 x the first record's interval are
deleted), with the event time as the clock.
"""

from __future__ import annotations

from operators.event import EventStrategies, access, by_priority_group, inhibit
from operators.event_records import flat_event, format_time
from operators.hosts import parse_hosts
from operators.strategy import parse_strategies

T = 1714550400
P = "p"
HOSTS = parse_hosts(
    [{"bk_host_id": 7, "bk_host_innerip": "10.0.0.7", "bk_cloud_id": 0, "bk_biz_id": 2}]
)


def strategy(sid: int, **extra) -> dict:
    return {
        "id": sid,
        "bk_biz_id": 2,
        "update_time": 1,
        "items": [
            {
                "id": sid * 10,
                "algorithms": [{"level": 2}],
                "query_configs": [
                    {
                        "data_source_label": "bk_monitor",
                        "data_type_label": "event",
                        "metric_id": "bk_monitor.gse_custom_event",
                    }
                ],
            }
        ],
        **extra,
    }


STRATEGIES = EventStrategies(
    parse_strategies(
        [
            strategy(61, priority=1, priority_group_key="g"),
            strategy(62, priority=5, priority_group_key="g"),
            strategy(63),
            strategy(64, priority=5, priority_group_key="h"),
            strategy(65, priority=0, priority_group_key="g"),
        ]
    )
)


def anomalies(at: int):
    message = {"_server_": "10.0.0.7", "_utctime_": format_time(at), "_value_": ["down"]}
    [record] = flat_event(message)[1]
    found, drops = access(record, HOSTS, STRATEGIES, P, at)
    assert drops == []
    return found


def decide(states: dict, at: int, now: int | None = None) -> dict[int, tuple[bool, tuple]]:
    """Every anomaly of one record at ``at``: strategy id → (inhibited, claims); ``states``
    (group → hash) is updated as the flow's keyed state would be."""
    free, batches = by_priority_group(anomalies(at), at if now is None else now)
    out = {d.anomaly.strategy.id: (d.inhibited, d.claims) for d in free}
    for batch in batches:
        states[batch.group], decided = inhibit(states.get(batch.group), batch)
        out.update({d.anomaly.strategy.id: (d.inhibited, d.claims) for d in decided})
    return out


def test_the_highest_priority_of_a_group_passes_and_claims_the_series():
    states: dict = {}
    found = anomalies(T)
    assert [a.strategy.id for a in found][:2] in ([62, 64], [64, 62])
    md5 = found[0].dimension_md5
    assert decide(states, T) == {
        62: (False, ((md5, f"5:{T}"),)),
        65: (True, ()),
        61: (True, ()),
        63: (False, ()),
        64: (False, ((md5, f"5:{T}"),)),
    }
    assert states == {"g": {md5: f"5:{T}"}, "h": {md5: f"5:{T}"}}


def test_a_claim_inhibits_for_five_intervals_and_is_deleted_after_ten():
    md5 = anomalies(T)[0].dimension_md5
    states = {"g": {md5: f"9:{T}", "old": f"9:{T - 601}", "kept": f"9:{T - 599}"}}
    assert decide(states, T)[62] == (True, ())
    assert states["g"] == {md5: f"9:{T}", "kept": f"9:{T - 599}"}
    # The batch's first anomaly carries the deletion to Redis (sync_priority's hdel).
    [g] = [b for b in by_priority_group(anomalies(T), T)[1] if b.group == "g"]
    _, decided = inhibit({md5: f"9:{T}", "old": f"9:{T - 601}", "kept": f"9:{T - 599}"}, g)
    assert [d.drops for d in decided] == [(("old", f"9:{T - 601}"),)] + [()] * (len(decided) - 1)
    states = {"g": {md5: f"9:{T - 299}"}}
    assert decide(states, T)[62] == (True, ())
    states = {"g": {md5: f"9:{T - 301}"}}
    assert decide(states, T)[62] == (False, ((md5, f"5:{T}"),))
    assert states["g"] == {md5: f"5:{T}"}


def test_an_equal_or_lower_claim_does_not_inhibit_and_priority_zero_never_claims():
    md5 = anomalies(T)[0].dimension_md5
    states = {"g": {md5: f"5:{T - 10}"}}
    decided = decide(states, T)
    assert decided[62] == (False, ((md5, f"5:{T}"),))
    assert decided[65] == (True, ())
    only_zero = EventStrategies(
        parse_strategies([strategy(65, priority=0, priority_group_key="g")])
    )
    message = {"_server_": "10.0.0.7", "_utctime_": format_time(T), "_value_": ["down"]}
    [record] = flat_event(message)[1]
    [batch] = by_priority_group(access(record, HOSTS, only_zero, P, T)[0], T)[1]
    after, [zero] = inhibit({}, batch)
    assert (after, zero.inhibited, zero.claims) == (None, False, ())


def test_an_event_dated_ahead_claims_and_expires_on_the_wall_clock():
    """bkmonitor's clock is ``time.time()`` at processing. An event an hour ahead (the time
    window takes it), accessed at T, stamps its claim T and deletes only claims older than 10
    intervals before T: the group's other claims stay."""
    md5 = anomalies(T)[0].dimension_md5
    states = {"g": {"other": f"9:{T - 300}"}}
    assert decide(states, T + 3500, now=T)[62] == (False, ((md5, f"5:{T}"),))
    assert states["g"] == {"other": f"9:{T - 300}", md5: f"5:{T}"}
