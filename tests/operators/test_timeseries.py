"""The shared access steps, each expectation derived by hand from bkmonitor's
``access/data/filters.py`` (``RangeFilter``, ``ExpireFilter``, ``HostStatusFilter``),
``core/control/item.py`` (``Item.is_range_match``, ``extra_agg_condition_obj``),
``access/data/processor.py`` (``BaseAccessDataProcess.push``) and ``access/priority.py``."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alarmflow.config import BUNDLED_HOSTS, BUNDLED_STRATEGIES
from operators.data_filters import RangeMatcher
from operators.drops import Drop
from operators.hosts import load_host_file
from operators.priority import Contender
from operators.records import parse_point, record_spec
from operators.rejects import SourceRecord
from operators.strategy import load_strategy_file, parse_strategies
from operators.strategy_group import Group, strategy_groups
from operators.timeseries import (
    AccessRecord,
    GroupPlan,
    RecordMaker,
    access_record,
    check_priorities,
    check_priority,
    plans_by_table,
    plans_for,
)

T = 1_800_000_000
SRC = SourceRecord("t", 0, 0, b"")
HOSTS = load_host_file(BUNDLED_HOSTS)
BUNDLED = load_strategy_file(BUNDLED_STRATEGIES)
MEM_403 = dict(next(s for s in BUNDLED if s.id == 403).raw)


def mem(sid: int, priority: int | None, group: str, **item_extra) -> dict:
    raw = copy.deepcopy(MEM_403)
    raw.update(id=sid, priority=priority, priority_group_key=group)
    raw["items"][0].update(id=sid * 10, **item_extra)
    return raw


def plan_of(*raws: dict) -> GroupPlan:
    strategies = parse_strategies(list(raws))
    [group] = strategy_groups(strategies).values()
    return GroupPlan.of(group, {s.id: s for s in strategies}, record_spec(group.first))


def row(ip: str, at: int = T, value: float = 1.0) -> dict:
    return {
        "bk_target_ip": ip,
        "bk_target_cloud_id": "0",
        "pct_used": value,
        "_time_": at,
        "_result_": value,
    }


@pytest.mark.parametrize(
    ("ip", "at", "clock", "drop", "passed"),
    [
        ("10.0.0.7", T, T + 1800, None, True),
        # ExpireFilter: now - time > max(10 x 60, 1800).
        ("10.0.0.7", T, T + 1801, Drop.EXPIRED, False),
        # HostStatusFilter: an unknown host is gone (no no-data list either).
        ("10.9.9.9", T, T, Drop.UNKNOWN_HOST, False),
        # A host whose monitoring is off: kept (no-data lists get it), retained by no item.
        ("10.0.0.40", T, T, Drop.HOST_DISABLED, True),
    ],
)
def test_filters(ip, at, clock, drop, passed):
    record = access_record(plan_of(mem(1, None, "")), SRC, row(ip, at), HOSTS, 0.0, clock)
    assert (record.drop, record.passed_filters) == (drop, passed)
    assert record.kept == (() if drop else ("1.10",))


def test_range_keeps_per_item_and_out_of_range_still_reaches_no_data():
    only_8 = [[{"field": "bk_target_ip", "method": "eq", "value": ["10.0.0.8"]}]]
    plan = plan_of(mem(1, None, ""), mem(2, None, "", target=only_8))
    assert access_record(plan, SRC, row("10.0.0.7"), HOSTS, T, T).retained == ("1.10",)
    narrow = plan_of(mem(2, None, "", target=only_8))
    record = access_record(narrow, SRC, row("10.0.0.7"), HOSTS, 0, T)
    assert (record.drop, record.passed_filters) == (Drop.OUT_OF_RANGE, True)


def test_a_record_walks_each_priority_group_of_its_strategy_group():
    """Two priority groups in one strategy group: each is checked on its own hash."""
    plan = plan_of(mem(1, 3, "PGK:a"), mem(2, 1, "PGK:a"), mem(3, 1, "PGK:b"))
    record = access_record(plan, SRC, row("10.0.0.7"), HOSTS, T, T)
    assert record.pending == ("PGK:a", "PGK:b")
    md5 = record.md5
    hash_a, record = check_priority(None, record)
    assert hash_a == {md5: f"3:{T}"} and record.inhibited == {"2.20"}
    # PGK:b holds a fresh higher claim on the series: 3 is inhibited too.
    hash_b, record = check_priority({md5: f"9:{T - 10}"}, record)
    assert hash_b == {md5: f"9:{T - 10}"}
    assert (record.kept, record.pending, record.drop) == (("1.10",), (), None)
    assert record.priority_updates == (("PGK:a", md5, f"3:{T}"),)


def test_a_record_whose_items_are_all_inhibited_is_dropped_as_inhibited():
    plan = plan_of(mem(2, 1, "PGK:a"))
    record = access_record(plan, SRC, row("10.0.0.7"), HOSTS, T, T)
    stored = {record.md5: f"5:{T}", "stale": f"5:{T - 601}"}
    after, record = check_priority(stored, record)
    assert record.drop is Drop.INHIBITED
    # sync_priority: the entry older than 10 x 60 s is deleted from the group's hash, and the
    # record's writes delete it from Redis (its hdel).
    assert after == {record.md5: f"5:{T}"}
    assert record.priority_drops == (("PGK:a", "stale", f"5:{T - 601}"),)


def test_a_point_from_the_future_claims_at_the_wall_clock():
    plan = plan_of(mem(1, 3, "PGK:a"))
    record = access_record(plan, SRC, row("10.0.0.7", at=T + 600), HOSTS, T, T)
    after, _ = check_priority(None, record)
    assert after == {record.md5: f"3:{T}"}


def test_a_claim_never_goes_back_in_time():
    """A record older than its series' claim is checked at the claim's time, as bkmonitor's
    wall clock would: the claim keeps its time and the record's own inhibition is decided
    against it (here 1 under 3's 100 s old claim: inhibited)."""
    plan = plan_of(mem(1, 3, "PGK:a"))
    newer = access_record(plan, SRC, row("10.0.0.7", at=T + 60), HOSTS, T + 90, T + 90)
    claimed, _ = check_priority(None, newer)
    older = access_record(plan, SRC, row("10.0.0.7", at=T), HOSTS, T + 91, T + 91)
    after, checked = check_priority(claimed, older)
    assert after == {older.md5: f"3:{T + 60}"} and checked.priority_updates == (
        ("PGK:a", older.md5, f"3:{T + 60}"),
    )
    low = access_record(plan_of(mem(2, 1, "PGK:a")), SRC, row("10.0.0.7", at=T), HOSTS, T, T)
    assert check_priority(after, low)[1].drop is Drop.INHIBITED


def test_a_dropped_record_passes_the_priority_step_unchanged():
    plan = plan_of(mem(2, 1, "PGK:a"))
    record = access_record(plan, SRC, row("10.9.9.9"), HOSTS, 0, T)
    after, checked = check_priority({"x": f"1:{T}"}, record)
    assert after == {"x": f"1:{T}"}
    assert (checked.drop, checked.pending, checked.priority_updates) == (Drop.UNKNOWN_HOST, (), ())


@pytest.mark.parametrize(
    ("table", "field", "value", "kept"),
    [
        # FILE_SYSTEM_TYPE_IGNORE = ["iso9660", "tmpfs", "udf"] on device_type.
        ("system.disk", "device_type", "tmpfs", False),
        ("system.disk", "device_type", "ext4", True),
        # ETH_FILTER_CONDITION_LIST: device_name != "lo".
        ("system.net", "device_name", "lo", False),
        ("system.net", "device_name", "eth0", True),
        # Only those two tables; a missing field matches (default_value_if_not_exists).
        ("system.mem", "device_name", "lo", True),
        ("system.disk", "other", "tmpfs", True),
    ],
)
def test_builtin_disk_and_net_conditions(table, field, value, kept):
    item = {
        "query_configs": [
            {
                "data_source_label": "bk_monitor",
                "data_type_label": "time_series",
                "result_table_id": table,
            }
        ]
    }
    assert RangeMatcher.for_item(item).matches({field: value}) is kept


def test_a_point_feeds_the_groups_of_its_table_business_and_metric():
    groups: list[Group] = list(strategy_groups(BUNDLED).values())
    plans = [GroupPlan.of(g, {s.id: s for s in BUNDLED}, record_spec(g.first)) for g in groups]
    table = plans_by_table(plans)

    def point(metrics: dict, biz: int = 2, rt: str = "system.mem"):
        dims = {"bk_biz_id": biz, "bk_target_ip": "10.0.0.7"}
        return parse_point(
            {"result_table_id": rt, "time": T, "dimensions": dims, "metrics": metrics}
        )

    found, drop = plans_for(point({"pct_used": 1}), table, by_metric=True)
    assert drop is None
    assert sorted(sid for p in found for sid, _ in p.group.items) == [403, 404]
    assert plans_for(point({"other": 1}), table, by_metric=True) == ([], Drop.NO_STRATEGY)
    assert plans_for(point({"pct_used": 1}, biz=0), table, by_metric=True) == (
        [],
        Drop.NO_BUSINESS,
    )
    # Real-time access takes the table's strategies whatever metric the message carries.
    assert plans_for(point({}), table, by_metric=False)[1] is None


def test_a_series_is_remembered_by_its_values_and_their_types():
    """``count_md5`` digests ``str()`` of each value, so ``"0"`` and ``0`` are the same
    series to bkmonitor while ``0.0``, ``-0.0`` and ``False`` are others; a host known by its
    ip only with ``"0"``. One maker over all of them, in either order, makes each record as a
    fresh one does (the test also covers a value that cannot be a dict key)."""
    plan = plan_of(MEM_403)
    clouds = ["0", 0, 0.0, -0.0, False, None, [0], {"a": 0}, "0"]
    raws = [{**row("10.0.0.7", T + i), "bk_target_cloud_id": c} for i, c in enumerate(clouds)]
    for order in (raws, raws[::-1]):
        maker = RecordMaker(HOSTS)
        made = [maker(plan, SRC, raw, T, T) for raw in order]
        assert made == [access_record(plan, SRC, raw, HOSTS, T, T) for raw in order]
    md5s = {str(c): r.md5 for c, r in zip(clouds, made[::-1], strict=True)}
    assert md5s["0"] != md5s["0.0"] != md5s["-0.0"] != md5s["False"]


CONTENDERS = st.lists(
    st.builds(
        Contender,
        key=st.sampled_from(["1.10", "2.20", "3.30"]),
        priority=st.integers(0, 3),
        group=st.sampled_from(["g", "other"]),
        interval=st.sampled_from([60, 300]),
    ),
    max_size=3,
)
RECORDS = st.lists(
    st.builds(
        lambda series, at, late, interval, contenders: AccessRecord(
            SRC,
            "sg",
            {"time": at, "access_time": at + late, "record_id": f"{series}.{at}"},
            interval,
            retained=tuple(c.key for c in contenders),
            contenders=tuple(contenders),
            pending=("g",),
        ),
        st.sampled_from(["a", "b", "c", "d"]),
        st.integers(T, T + 7200),
        st.sampled_from([-30, 0, 0.5, 30]),
        st.sampled_from([60, 300]),
        CONTENDERS,
    ),
    max_size=40,
)


@given(
    stored=st.dictionaries(
        st.sampled_from(["a", "b", "x"]),
        st.sampled_from([f"1:{T}", f"3:{T + 3000}.5", "junk", ""]),
    ),
    records=RECORDS,
)
def test_a_batch_of_checks_equals_the_checks_one_record_at_a_time(stored, records, baseline_module):
    """One hash over a batch (claims in a heap by time) ends as, and checks each record as,
    main before the performance work did one record at a time (``check_records`` on a copy of
    the hash, whose sync reads every claim). Main did not write its deletions to Redis; each
    record's deletions to write are the claims its check took out of main's hash."""
    check_priority_before = baseline_module("operators/timeseries.py").check_priority
    after, one_by_one, deleted = dict(stored), [], []
    for record in records:
        before = after
        after, checked = check_priority_before(after, record)
        one_by_one.append(checked)
        deleted.append(sorted(("g", md5, raw) for md5, raw in before.items() if md5 not in after))
    batch_after, batch_checked, rejected = check_priorities(stored, records, "priority_0")
    assert rejected == []
    assert [replace(c, priority_drops=()) for c in batch_checked] == one_by_one
    assert [sorted(c.priority_drops) for c in batch_checked] == deleted
    assert batch_after == after
