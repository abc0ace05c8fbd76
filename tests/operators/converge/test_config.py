"""Context, config normalisation and the dimension (``converge/processor.py``)."""

from __future__ import annotations

import hashlib

import pytest

from operators.converge.config import normalise
from operators.converge.context import converge_context, parse_action
from operators.converge.dimension import biz_dimension, dimension, dimension_text
from operators.rejects import Reason, Rejected
from tests.operators.converge.timeline import action_json

NOTICE = {
    "is_enabled": True,
    "converge_func": "collect",
    "timedelta": 60,
    "count": 5,
    "condition": [
        {"dimension": "strategy_id", "value": ["self"]},
        {"dimension": "notice_info", "value": ["self"]},
    ],
    "max_timedelta": 0,
    "need_biz_converge": True,
    "sub_converge_config": {"timedelta": 60, "count": 2, "converge_func": "collect_alarm"},
}


def notice(**fields):
    data = action_json(
        1, 100, plugin_type="notice", notice_way="mail", notice_receiver=["bob", "al"]
    )
    data["converge_config"] = NOTICE
    data.update(fields)
    return parse_action(data)


def test_context_fields():
    action = notice(dimension_hash="h1", user_type="user")
    ctx = converge_context(action)
    assert ctx["alert_info"] == "1_1_abnormal_h1"
    assert ctx["notice_info"] == "1_1_abnormal_h1_mail_bob,al"
    assert ctx["action_info"] == "1_abnormal_7"
    assert ctx["group_notice_way"] == "user_mail"


def test_dimensions_default_to_count_md5_of_the_common_alert_dimensions():
    alerts = [
        {"id": "a", "dimensions": [{"key": "ip", "value": "1"}, {"key": "x", "value": "2"}]},
        {"id": "b", "dimensions": [{"key": "ip", "value": "1"}, {"key": "x", "value": ""}]},
    ]
    one = parse_action(action_json(1, alerts=alerts))
    two = parse_action(action_json(2, alerts=[*alerts[:1], {"id": "c", "dimensions": []}]))
    assert one.dimensions != two.dimensions
    assert one.alert_ids == ("a", "b")


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"id": None}, Reason.MISSING_FIELD),
        ({"id": "7"}, Reason.WRONG_TYPE),
        ({"id": True}, Reason.WRONG_TYPE),
        ({"create_time": "x"}, Reason.WRONG_TYPE),
        ({"alerts": [{"dimensions": []}]}, Reason.WRONG_TYPE),
        ({"converge_config": [1]}, Reason.WRONG_TYPE),
    ],
)
def test_bad_actions_are_rejected(fields, reason):
    with pytest.raises(Rejected) as caught:
        parse_action(action_json(1, **fields))
    assert caught.value.reason == reason


def test_notices_are_forced_to_120s_count_1_and_notice_info():
    action = notice()
    config = normalise(action, converge_context(action))
    assert (config.timedelta_s, config.count, config.window_s) == (120, 1, 120)
    assert [dim for dim, _ in config.conditions] == ["notice_info", "strategy_id"]
    assert config.need_biz_converge


def test_other_actions_without_condition_converge_on_action_info():
    raw = {"converge_func": "skip_when_exceed", "timedelta": 300, "count": 3, "max_timedelta": 900}
    raw["is_enabled"] = True
    action = parse_action(action_json(1, converge_config=raw))
    config = normalise(action, converge_context(action))
    assert config.conditions == (("action_info", ("self",)),)
    assert (config.count, config.window_s, config.max_window_s) == (3, 900, 900)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"converge_config": None}, "no converge_config"),
        ({"converge_config": {**NOTICE, "is_enabled": False}}, "not enabled"),
        ({"converge_config": {"converge_func": "trigger", "timedelta": 60}}, "not enabled"),
        ({"is_parent_action": True}, "parent"),
        ({"converge_config": {"is_enabled": 1, "converge_func": "nope"}}, "unknown"),
        ({"converge_config": {"is_enabled": 1, "converge_func": ["trigger"]}}, "unknown"),
        ({"converge_config": {"is_enabled": 1, "converge_func": {"a": 1}}}, "unknown"),
        ({"converge_config": {"is_enabled": 1, "converge_func": "defense"}}, "not positive"),
        ({"converge_config": {**NOTICE, "converge_func": "defense", "count": -1}}, "neg"),
        ({"plugin_type": "notice", "notice_way": "voice"}, "voice"),
    ],
)
def test_illegal_configs_pass_through_with_a_reason(fields, reason):
    action = parse_action(action_json(1, **fields))
    assert reason in normalise(action, converge_context(action))


def test_dimension_string_sorted_self_substituted_lists_joined():
    action = notice(dimension_hash="h1")
    ctx = converge_context(action)
    config = normalise(action, ctx)
    text = dimension_text(config, ctx)
    assert text == "#collect|notice_info:1_1_abnormal_h1_mail_bob,al|strategy_id:1"
    assert dimension(config, ctx) == "!sha1#" + hashlib.sha1(text.encode()).hexdigest()
    assert len(dimension(config, ctx)) == 46


def test_long_lists_are_joined_in_full_not_md5_shortened():
    raw = {
        "is_enabled": True,
        "converge_func": "trigger",
        "timedelta": 60,
        "condition": [{"dimension": "bk_biz_id", "value": [[1, 2, 3, 4, 5]]}],
    }
    action = parse_action(action_json(1, converge_config=raw))
    ctx = converge_context(action)
    assert dimension_text(normalise(action, ctx), ctx) == "#trigger|bk_biz_id:1,2,3,4,5"


def test_biz_dimension():
    assert biz_dimension(converge_context(notice())) == "2.abnormal.mail.bob_al.1"
