"""bkmonitor's agg_condition matching, as a scenario table."""

from __future__ import annotations

import pytest

from operators.conditions import compile_conditions, mapping_lookup
from operators.strategy import StrategyError

DATA = {"device": "eth0", "mount": "/data/logs", "usage": "87.5", "tags": ["a", "b"], "zero": 0}


def cond(key, method, value, condition=None):
    entry = {"key": key, "method": method, "value": value}
    if condition:
        entry["condition"] = condition
    return entry


@pytest.mark.parametrize(
    ("conditions", "matches"),
    [
        ([], True),
        ([cond("device", "eq", ["eth0", "eth1"])], True),
        ([cond("device", "eq", [" eth0 "])], True),
        ([cond("device", "eq", ["lo"])], False),
        ([cond("device", "neq", ["lo"])], True),
        ([cond("device", "neq", ["eth0"])], False),
        ([cond("zero", "eq", ["0"])], True),
        ([cond("mount", "include", ["/data"])], True),
        ([cond("mount", "include", ["/tmp"])], False),
        ([cond("mount", "exclude", ["/tmp"])], True),
        ([cond("mount", "exclude", ["logs"])], False),
        ([cond("device", "reg", ["^eth\\d$"])], True),
        ([cond("device", "reg", ["^wlan"])], False),
        ([cond("device", "reg", ["(unclosed"])], False),
        ([cond("device", "nreg", ["^wlan"])], True),
        ([cond("usage", "gt", [80])], True),
        ([cond("usage", "gte", ["87.5"])], True),
        ([cond("usage", "lt", [80])], False),
        ([cond("usage", "lte", [90])], True),
        ([cond("usage", "gt", ["not a number"])], False),
        ([cond("tags", "issuperset", ["a"])], True),
        ([cond("tags", "issuperset", ["a", "c"])], False),
        ([cond("missing", "eq", ["x"])], True),
        ([cond("device", "eq", ["lo"]), cond("mount", "include", ["/data"])], False),
        ([cond("device", "eq", ["lo"]), cond("mount", "include", ["/data"], "or")], True),
        ([cond("device", "eq", ["lo"], "or"), cond("mount", "include", ["/x"], "or")], False),
        ([{"key": "device", "method": "eq"}], True),
        ([{"method": "eq", "value": ["lo"]}], True),
        ([cond("device", "unknown-method", ["lo"])], True),
        ([cond("device", ["eq"], ["lo"])], True),
    ],
)
def test_condition_table(conditions, matches):
    assert compile_conditions(conditions).matches(mapping_lookup(DATA)) is matches


def test_none_compiles_to_match_everything():
    assert compile_conditions(None).matches(mapping_lookup({}))


@pytest.mark.parametrize("raw", ["abc", [1], [cond("device", "eq", ["lo"]), "or"], {"key": "k"}])
def test_a_list_of_other_than_condition_objects_is_refused(raw):
    with pytest.raises(StrategyError, match="'agg_condition' must be a list of objects"):
        compile_conditions(raw)
