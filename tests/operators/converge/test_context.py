"""Parsing, planning and deciding are total: every field of a valid action given every wrong type is
either taken or rejected with a reason, never another exception (issue: no message stops the
converge flow)."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest

from operators.converge.context import parse_action
from operators.converge.driver import Converger
from operators.rejects import Reason, Rejected
from tests.operators.converge.timeline import WEBHOOK, action_json

WRONG = (None, True, False, 0, -1, 2**62, 1.5, 1e300, "", "x", [], [1], [{}], {}, {"a": 1})
VALID = action_json(
    1,
    10,
    alerts=[
        {
            "id": "a",
            "strategy_id": 1,
            "severity": 1,
            "strategy": {"id": 1},
            "dimensions": [{"key": "ip", "value": "1"}],
        }
    ],
    notice_receiver=["bob"],
    converge_config={
        **WEBHOOK,
        "condition": [{"dimension": "action_info", "value": ["self"]}],
        "max_timedelta": 600,
        "need_biz_converge": True,
        "sub_converge_config": {"converge_func": "collect_alarm"},
    },
)


def paths(value, prefix=()):
    """Every field path of the valid action (object keys and list indexes)."""
    if isinstance(value, dict):
        for key, member in value.items():
            yield (*prefix, key)
            yield from paths(member, (*prefix, key))
    elif isinstance(value, list):
        for index, member in enumerate(value):
            yield (*prefix, index)
            yield from paths(member, (*prefix, index))


def replaced(path, wrong):
    data = copy.deepcopy(VALID)
    target = data
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = wrong
    return data


CASES = [(path, wrong) for path in paths(VALID) for wrong in WRONG]


@pytest.mark.parametrize(("path", "wrong"), CASES, ids=[f"{p}={w!r}"[:60] for p, w in CASES])
def test_every_field_given_every_wrong_type_is_taken_or_rejected(path, wrong):
    try:
        action = parse_action(replaced(path, wrong))
    except Rejected as exc:
        assert exc.reason in set(Reason)
        return
    converger = Converger()
    converger.push(action)
    converger.push(replace(action, id=2, create_time=action.create_time + 1))
    converger.flush()


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"alerts": [{"id": "a", "dimensions": {"ip": 1}}]}, Reason.WRONG_TYPE),
        ({"alerts": [{"id": "a", "dimensions": 7}]}, Reason.WRONG_TYPE),
        ({"create_time": 1e300}, Reason.FUTURE_TIME),
        ({"create_time": 1_700_000_000_000}, Reason.MILLISECOND_TIME),
        ({"create_time": 12}, Reason.ANCIENT_TIME),
        ({"create_time": "x"}, Reason.WRONG_TYPE),
        ({"id": None}, Reason.MISSING_FIELD),
        ({"id": "7"}, Reason.WRONG_TYPE),
        ({"converge_config": [1]}, Reason.WRONG_TYPE),
        ({"timeout": 10**9}, Reason.OUT_OF_RANGE),
    ],
)
def test_rejections_name_their_reason(fields, reason):
    with pytest.raises(Rejected) as caught:
        parse_action({**VALID, **fields})
    assert caught.value.reason == reason
