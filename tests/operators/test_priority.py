"""Priority inhibition, each expectation derived by hand from bkmonitor's
``alarm_backends/service/access/priority.py`` (``PriorityChecker.is_inhibited``,
``check_records``, ``sync_priority``) or its test
``alarm_backends/tests/service/access/data/test_priority.py``."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from operators.priority import (
    Contender,
    PriorityChecker,
    PriorityOutcome,
    check_records,
    encode_entry,
    parse_entry,
    read_entry,
)

NOW = 1_800_000_000.5


def test_bkmonitor_test_inhibited_and_sync():
    """``TestPriority.test_inhibited_and_sync``: same cache, same calls, same answers. Every
    item's strategy interval is 60 (``Strategy.get_interval``)."""
    pc = PriorityChecker(
        {
            "m0": f"1:{NOW}",
            "m1": f"3:{NOW - 100}",
            "m2": f"3:{NOW - 301}",
            "aaa": f"3:{NOW - 601}",
            "bbb": f"3:{NOW}",
        }
    )
    # Items 1..4 have priorities 1, 2, 3, 3.
    assert [pc.is_inhibited("m0", p, 60, NOW) for p in (1, 2, 3, 3)] == [False] * 4
    assert [pc.is_inhibited("m1", p, 60, NOW) for p in (1, 2, 3, 3)] == [True, True, False, False]
    assert [pc.is_inhibited("m2", p, 60, NOW) for p in (1, 2, 3, 3)] == [False] * 4
    assert set(pc.updates) == {"m0", "m1", "m2"}
    # sync_priority(ITEMS[0]): interval 60, only "aaa" is older than 600 s.
    assert pc.expired(60, NOW) == ["aaa"]


@pytest.mark.parametrize(
    ("stored", "priority", "inhibited", "claim"),
    [
        # No entry: pass; a non-zero priority claims the series with "priority:now".
        (None, 2, False, f"2:{NOW}"),
        # No entry and priority 0: pass, nothing stored ("它已经是最小值了").
        (None, 0, False, None),
        # Higher, 299 s old, interval 60: 5 x 60 = 300 s not passed, so inhibited.
        (f"5:{NOW - 299}", 2, True, None),
        # Exactly 300 s old: ``timestamp + 300 < now`` is False, still inhibited.
        (f"5:{NOW - 300}", 2, True, None),
        # 301 s old: expired, pass and claim.
        (f"5:{NOW - 301}", 2, False, f"2:{NOW}"),
        # Equal priority: ``int(priority) <= strategy_priority``, pass and claim.
        (f"2:{NOW - 10}", 2, False, f"2:{NOW}"),
        # Lower stored priority: pass and claim.
        (f"1:{NOW - 10}", 2, False, f"2:{NOW}"),
        # Priority 0 under a fresh higher entry: inhibited.
        (f"1:{NOW - 10}", 0, True, None),
        # Priority 0 over an expired entry: pass, and the old entry is left as it was.
        (f"1:{NOW - 400}", 0, False, None),
        # Unreadable entries read as none (bkmonitor raises on them).
        ("garbage", 2, False, f"2:{NOW}"),
        ("2.5:100", 1, False, f"1:{NOW}"),
        ("", 1, False, f"1:{NOW}"),
    ],
)
def test_is_inhibited(stored, priority, inhibited, claim):
    pc = PriorityChecker({} if stored is None else {"m": stored})
    assert pc.is_inhibited("m", priority, 60, NOW) is inhibited
    assert pc.updates == ({} if claim is None else {"m": claim})


def test_entries_are_written_as_bkmonitor_formats_them():
    assert encode_entry(3, 1714000000.25) == "3:1714000000.25"
    assert encode_entry(3, 1714000000) == "3:1714000000"
    assert parse_entry("3:1714000000.25") == (3, 1714000000.25)
    assert parse_entry(None) is None and parse_entry("1:2:3") is None


ENTRIES = st.one_of(
    st.builds(encode_entry, st.integers(-5, 5), st.floats(allow_nan=True)),
    st.sampled_from(["", "1:2:3", "x:1", "1:", ":1", " 2 : 3 ", "1:nan", "1_0:2"]),
    st.text(max_size=12),
)


@given(st.lists(ENTRIES, max_size=6))
def test_a_remembered_entry_is_the_entry_read_afresh(raws):
    for raw in raws * 2:
        expected = read_entry(raw) if raw else None
        assert repr(parse_entry(raw)) == repr(expected)


@given(
    st.dictionaries(st.text(max_size=4), ENTRIES, max_size=8),
    st.integers(0, 600),
    st.floats(allow_nan=False),
)
def test_expired_fields_are_those_read_afresh(cache, interval, now):
    """``expired`` reads remembered values: the fields are those each value read afresh
    names (unreadable, or older than 10 x the interval)."""
    parse_entry(next(iter(cache.values()), ""))
    plain = [
        md5
        for md5, raw in cache.items()
        if (entry := read_entry(raw) if raw else None) is None or entry[1] + interval * 10 < now
    ]
    assert PriorityChecker(cache).expired(interval, now) == plain


def c(key: str, priority: int, group: str = "g", interval: int = 60) -> Contender:
    return Contender(key, priority, group, interval)


def test_highest_priority_first_whatever_the_item_order():
    """``check_records`` sorts a record's items by priority, highest first: with an empty
    hash, priority 3 claims the series, then priority 1 is inhibited by it."""
    out = check_records({}, [("m", [c("low", 1), c("high", 3)])], NOW, 60)
    assert out == PriorityOutcome([frozenset({"low"})], ["g"], {"g": {"m": f"3:{NOW}"}}, {})


def test_a_claim_holds_for_the_later_records_of_the_batch():
    """``is_inhibited`` writes its claim into ``priority_cache``, which later records read."""
    out = check_records({}, [("m", [c("a", 3)]), ("m", [c("b", 1)]), ("n", [c("b", 1)])], NOW, 60)
    assert out.inhibited == [frozenset(), frozenset({"b"}), frozenset()]
    assert out.updates == {"g": {"m": f"3:{NOW}", "n": f"1:{NOW}"}}


def test_groups_are_independent():
    stored = {"g1": {"m": f"9:{NOW}"}}
    out = check_records(stored, [("m", [c("x", 1, "g1"), c("y", 1, "g2")])], NOW, 60)
    assert out.inhibited == [frozenset({"x"})]
    assert out.updates == {"g2": {"m": f"1:{NOW}"}}
    assert out.touched == ["g1", "g2"]


def test_sync_deletes_with_the_batch_interval_and_expires_every_group():
    """``sync_priority(records[0].items[0])``: one interval (here 30, so 300 s) for every
    group; the claimed field is fresh and stays; an unreadable field goes too."""
    stored = {
        "g": {"old": f"1:{NOW - 301}", "young": f"1:{NOW - 300}", "bad": "x"},
        "h": {"old": f"1:{NOW - 301}"},
    }
    out = check_records(stored, [("m", [c("a", 0, "g", 600), c("b", 2, "h", 600)])], NOW, 30)
    assert out.inhibited == [frozenset()]
    assert out.updates == {"h": {"m": f"2:{NOW}"}}
    assert out.deletes == {"g": ["old", "bad"], "h": ["old"]}
    assert out.touched == ["h", "g"]
    assert out.hashes_after(stored) == {
        "g": {"young": f"1:{NOW - 300}"},
        "h": {"m": f"2:{NOW}"},
    }


def test_no_contenders_touch_nothing():
    assert check_records({"g": {"m": "1:0"}}, [("m", [])], NOW, 60) == PriorityOutcome(
        [frozenset()]
    )
