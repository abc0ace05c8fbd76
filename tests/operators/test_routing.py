"""Routing alerts to (strategy, item) by strategy id or by alert name and conditions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alarmflow.config import BUNDLED_STRATEGIES
from operators import _native
from operators.conditions import MISSING
from operators.routing import AlertRouter, Target, _read, alert_lookup
from operators.strategy import load_strategy_file, parse_strategies

ROUTER = AlertRouter(load_strategy_file(BUNDLED_STRATEGIES))


def event(name: str, biz: int = 2, tags: dict | None = None, **fields) -> dict:
    tag_list = [{"key": k, "value": v} for k, v in (tags or {}).items()]
    return {"alert_name": name, "bk_biz_id": biz, "tags": tag_list, **fields}


@pytest.mark.parametrize(
    ("alert", "targets"),
    [
        (event("CPU usage high"), [Target(101, 1001)]),
        (event("CPU usage high", biz=3), []),
        (event("CPU usage high", biz="2"), [Target(101, 1001)]),
        (event("Disk full", tags={"mount": "/data/db"}), [Target(102, 1002)]),
        (event("Disk full", tags={"mount": "/"}), [Target(102, 1002)]),
        (event("Disk full", tags={"mount": "/tmp"}), []),
        (event("Disk full"), [Target(102, 1002)]),
        (
            event("Pod CrashLoopBackOff", biz=3, tags={"namespace": "prod-pay"}),
            [Target(103, 1003), Target(103, 1004)],
        ),
        (event("Pod CrashLoopBackOff", biz=3, tags={"namespace": "dev-x"}), [Target(103, 1003)]),
        (event("Nobody watches this"), []),
        (event("Anything", strategy_id=201), [Target(201, 2001)]),
        (event("CPU usage high", strategy_id="103"), [Target(103, 1003), Target(103, 1004)]),
        (event("CPU usage high", strategy_id=999), []),
    ],
)
def test_routing_table(alert, targets):
    assert list(ROUTER.route(alert)) == targets


# Rules whose conditions read a tag and a field with methods that tell 1, True, "1" and 1.5
# apart, in two businesses; routes are remembered by the values the conditions read.
CONDITIONED = parse_strategies(
    [
        {
            "id": sid,
            "bk_biz_id": biz,
            "items": [
                {
                    "id": sid * 10,
                    "query_configs": [{"alert_name": "a", "agg_condition": conditions}],
                }
            ],
        }
        for sid, biz, conditions in (
            (1, 2, [{"key": "tags.k", "method": "eq", "value": ["1"]}]),
            (2, 2, [{"key": "tags.k", "method": "gt", "value": [1]}]),
            (3, 2, [{"key": "f", "method": "include", "value": ["ru"]}]),
            (4, 3, [{"key": "k", "method": "reg", "value": ["^1"]}]),
            (5, 2, []),
        )
    ]
)
VALUES = st.one_of(
    st.sampled_from([1, True, "1", 1.5, 2, "True", None, 0.0, -0.0, [1], ["1", 2]]),
    st.text(max_size=3),
)


BUSINESSES = st.sampled_from([2, 3, "2", "3", True, 2.0])
# Tags as a list, a name repeated (the last one counts, as in a dict built from them).
TAG_LISTS = st.lists(
    st.fixed_dictionaries({"key": st.sampled_from(["k", "f", "x"]), "value": VALUES}),
    max_size=4,
)


@given(
    st.lists(
        st.tuples(
            BUSINESSES,
            TAG_LISTS,
            st.dictionaries(st.sampled_from(["k", "f"]), VALUES, max_size=2),
        ),
        max_size=30,
    )
)
def test_remembered_routes_equal_routes_worked_out_afresh(alerts):
    warm = AlertRouter(CONDITIONED)
    for biz, tags, fields in alerts:
        alert = {"alert_name": "a", "bk_biz_id": biz, "tags": tags, **fields}
        assert warm.route(alert) == AlertRouter(CONDITIONED).route(alert)


KEYS = ("tags.k", "k", "f", "tags.f", "tags.x", "x")


@given(BUSINESSES, TAG_LISTS, st.dictionaries(st.sampled_from(["k", "f"]), VALUES, max_size=2))
def test_the_route_key_holds_what_the_conditions_read(biz, tags, fields):
    """The C route key (operators/_native.c ``route_key``) against what it stands for: the
    business id, then the values ``alert_lookup`` gives each key, then their types; or None
    when one of them is not of a type whose equal values route alike."""
    alert = {"alert_name": "a", "bk_biz_id": biz, "tags": tags, **fields}
    key = _native.route_key(alert, tuple(map(_read, KEYS)), MISSING)
    values = list(map(alert_lookup(alert), KEYS))
    exact = {str, int, bool, type(None), object}
    if type(biz) in {str, int} and exact.issuperset(map(type, values)):
        assert key == (biz, *values, *map(type, values))
    else:
        assert key is None


@pytest.mark.parametrize(
    "alert",
    [
        {"alert_name": "a", "tags": []},
        {"alert_name": "a", "bk_biz_id": 2, "tags": ({"key": "k", "value": "1"},)},
        {"alert_name": "a", "bk_biz_id": 2, "tags": [{"key": 1, "value": "1"}]},
        {"alert_name": "a", "bk_biz_id": 2, "tags": [{"key": "k"}]},
        {"alert_name": "a", "bk_biz_id": 2, "tags": ["k"]},
        {"alert_name": "a", "bk_biz_id": 2},
    ],
)
def test_an_unusual_alert_has_no_route_key_and_routes_as_the_lookup_reads_it(alert):
    reads = tuple(map(_read, KEYS))
    assert _native.route_key(alert, reads, MISSING) is None
    router = AlertRouter(CONDITIONED)
    try:
        expected = router._by_name["a"].matching(str(alert["bk_biz_id"]), alert_lookup(alert))
    except (KeyError, TypeError) as exc:
        with pytest.raises(type(exc)):
            router.route(alert)
    else:
        assert router.route(alert) == expected


def test_remembered_routes_tell_equal_values_of_other_types_apart():
    router = AlertRouter(CONDITIONED)
    routes = [router.route(event("a", tags={"k": value})) for value in (1, True, "1", 1, True)]
    # eq "1": str(1) is "1", str(True) "True"; gt 1: neither is above 1; include "ru" on the
    # field f: the alerts have none, and a key an alert lacks matches.
    one = [Target(1, 10), Target(3, 30), Target(5, 50)]
    true = [Target(3, 30), Target(5, 50)]
    text = one
    assert [list(r) for r in routes] == [one, true, text, one, true]
