"""The key registry: bkmonitor's prefix rule; the registry is the only place keys are spelled."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from state.keys import (
    ALERT_LIST_KEY,
    CHECK_RESULT_CACHE_KEY,
    DATA_SIGNAL_KEY,
    EVENT_DEDUP_KEY,
    REGISTRY,
    KeyDef,
    build_prefix,
    prefix_pattern,
)

REPO = Path(__file__).resolve().parents[2]


def test_names_and_templates_are_unique():
    assert len({k.name for k in REGISTRY}) == len(REGISTRY)
    assert len({k.template for k in REGISTRY}) == len(REGISTRY)


def test_prefix_is_prepended_with_a_dot():
    assert ALERT_LIST_KEY.key("bk_bkmonitorv3.ee", strategy_id=1, item_id=2) == (
        "bk_bkmonitorv3.ee.access.alert.1.2"
    )
    assert DATA_SIGNAL_KEY.key("p") == "p.access.data.signal"


def test_a_template_that_already_starts_with_the_prefix_is_not_prefixed_again():
    template = "{key_prefix}.detect.result.{sid}"
    key = KeyDef("X", DATA_SIGNAL_KEY.type, template, 60, DATA_SIGNAL_KEY.backend)
    assert key.key("bk.ee", sid=3) == "bk.ee.detect.result.3"


@pytest.mark.parametrize(
    ("args", "prefix"),
    [
        (("bk_bkmonitorv3", "enterprise", "production"), "bk_bkmonitorv3.ee"),
        (("bk_monitor", "enterprise", "development"), "bk_monitor.ee[development]"),
        (("bk_bkmonitorv3", "community", ""), "bk_bkmonitorv3.ce"),
        (("bk_bkmonitorv3", "tencent", "production"), "bk_bkmonitorv3.tencent"),
        (("bk_bkmonitorv3", "enterprise", "production", "cluster2"), "bk_bkmonitorv3.ee.cluster2"),
    ],
)
def test_build_prefix(args, prefix):
    assert build_prefix(*args) == prefix


def test_a_head_plus_the_last_field_is_the_key():
    head = ALERT_LIST_KEY.head("bk.ee", "item_id", strategy_id=7)
    assert head + "12" == ALERT_LIST_KEY.key("bk.ee", strategy_id=7, item_id=12)
    template = "{key_prefix}.detect.result.{sid}"
    own = KeyDef("X", DATA_SIGNAL_KEY.type, template, 60, DATA_SIGNAL_KEY.backend)
    assert own.head("bk.ee", "sid") + "3" == own.key("bk.ee", sid=3)
    with pytest.raises(ValueError, match="does not end with"):
        ALERT_LIST_KEY.head("bk.ee", "strategy_id", item_id=1)


PREFIXES = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["access", "access.event.duplicate.", "access.event.duplicate.ab", "{x}"]),
)


@given(PREFIXES, st.text(max_size=8), st.integers(), st.integers())
def test_around_a_middle_field_the_prefixed_key_is_the_key(prefix, value, sid, iid):
    before, after = EVENT_DEDUP_KEY.around(prefix, "record_digest", strategy_id=sid, item_id=iid)
    assert EVENT_DEDUP_KEY.prefixed(prefix, before + value + after) == EVENT_DEDUP_KEY.key(
        prefix, record_digest=value, strategy_id=sid, item_id=iid
    )
    at = {"strategy_id": sid, "item_id": iid, "level": 1}
    before, after = CHECK_RESULT_CACHE_KEY.around(prefix, "dimensions_md5", **at)
    assert CHECK_RESULT_CACHE_KEY.prefixed(prefix, before + value + after) == (
        CHECK_RESULT_CACHE_KEY.key(prefix, dimensions_md5=value, **at)
    )


def test_around_needs_the_field_once():
    with pytest.raises(ValueError, match="does not name"):
        EVENT_DEDUP_KEY.around("bk.ee", "dimensions_md5", strategy_id=1, item_id=2)


def test_field_needs_a_field_template():
    with pytest.raises(ValueError, match="no field template"):
        DATA_SIGNAL_KEY.field()


def test_prefix_pattern_escapes_glob_characters():
    assert prefix_pattern("bk_monitor.ee[development]") == r"bk_monitor.ee\[development\].*"


def test_no_module_spells_a_key_outside_the_registry():
    templates = {k.template.split("{", 1)[0] for k in REGISTRY}
    offenders = []
    for package in ("flows", "operators", "state", "alarmflow"):
        for path in (REPO / package).rglob("*.py"):
            if path.name == "keys.py" and path.parent.name == "state":
                continue
            for literal in re.findall(r"[\"']([a-z_]+\.[a-z_.{}]+)[\"']", path.read_text()):
                if any(literal.startswith(t) for t in templates if t):
                    offenders.append(f"{path.relative_to(REPO)}: {literal}")
    assert offenders == []
