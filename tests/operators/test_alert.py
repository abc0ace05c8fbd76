"""Alert cleaning by bkmonitor's Event.clean() rules, and what is rejected."""

from __future__ import annotations

import json
from hashlib import md5

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alarmflow.samples import sample_messages
from operators import _native
from operators.alert import _clean_tag_value, clean_alert, clean_alert_in_python, is_expired
from operators.bounds import decode_object
from operators.rejects import Reason, Rejected, SourceRecord
from tests import main_33cd407

NOW = 1_800_000_000.0


def alert(**fields) -> dict:
    base = {
        "event_id": "e-1",
        "plugin_id": "zabbix",
        "alert_name": "CPU usage high",
        "bk_biz_id": 2,
        "time": 1_799_999_000,
    }
    return {**base, **fields}


def md5_of_list(values: list) -> str:
    """bkmonitor's count_md5 of a flat list, written out by hand (not via operators.md5)."""
    digests = sorted(md5(str(v).encode()).hexdigest() for v in values)
    return md5(str(digests).encode()).hexdigest()


def test_a_full_alert_is_cleaned_as_bkmonitor_does():
    event = clean_alert(
        alert(
            status="recovered",
            severity="2",
            target_type="host",
            target="10.0.0.1",
            metric="system.cpu.usage",
            description=None,
            tags=[{"key": "cpu", "value": "cpu0", "display_key": "CPU"}],
        ),
        NOW,
    )
    assert event["status"] == "RECOVERED"
    assert event["severity"] == 2
    assert event["target_type"] == "HOST"
    assert event["metric"] == ["system.cpu.usage"]
    assert "description" not in event
    assert event["tags"] == [{"key": "cpu", "value": "cpu0", "display_key": "CPU"}]
    assert event["data_type"] == "event"
    assert event["create_time"] == int(NOW)
    assert event["access_time"] == NOW
    assert event["id"] == md5_of_list(["zabbix", "e-1", "RECOVERED", 1_799_999_000])
    assert event["dedupe_keys"] == ["alert_name", "target_type", "target", "bk_biz_id"]
    assert event["dedupe_md5"] == md5_of_list(["CPU usage high", "HOST", "10.0.0.1", 2])


@pytest.mark.parametrize(
    ("status", "cleaned"),
    [
        ("recovered", "RECOVERED"),
        ("Closed", "CLOSED"),
        ("abnormal", "ABNORMAL"),
        ("weird", "ABNORMAL"),
        (None, "ABNORMAL"),
    ],
)
def test_status(status, cleaned):
    assert clean_alert(alert(status=status), NOW)["status"] == cleaned


@pytest.mark.parametrize(
    ("severity", "cleaned"),
    [(1, 1), (3, 3), ("2", 2), (7, 3), (0, 1), (-4, 1), ("high", 3), (None, 3)],
)
def test_severity_is_clamped_to_one_to_three(severity, cleaned):
    assert clean_alert(alert(severity=severity), NOW)["severity"] == cleaned


@pytest.mark.parametrize(
    ("target_type", "cleaned"),
    [
        ("host", "HOST"),
        ("topo", "TOPO"),
        ("Service", "SERVICE"),
        ("K8S-POD", "K8S-POD"),
        ("custom", "custom"),
        (None, ""),
        ("", ""),
    ],
)
def test_target_type(target_type, cleaned):
    assert clean_alert(alert(target_type=target_type), NOW)["target_type"] == cleaned


def test_tag_values_that_are_dicts_or_lists_of_dicts_are_json_encoded_like_python():
    tags = [
        {"key": "labels", "value": {"team": "sre", "tier": 1}},
        {"key": "list", "value": [{"a": 1}, [1, 2], "plain", 3]},
        {"key": 5, "value": "five"},
    ]
    cleaned = clean_alert(alert(tags=tags), NOW)["tags"]
    assert cleaned == [
        {"key": "labels", "value": json.dumps({"team": "sre", "tier": 1})},
        {"key": "list", "value": ['{"a": 1}', "[1, 2]", "plain", 3]},
        {"key": "5", "value": "five"},
    ]
    assert cleaned[0]["value"] == '{"team": "sre", "tier": 1}'


def test_dedupe_keys_with_strategy_id_drop_alert_name_and_take_extra_keys_once():
    event = clean_alert(
        alert(
            strategy_id=12,
            dedupe_keys=["tags.cpu", "bk_biz_id", "tags.cpu"],
            tags=[{"key": "cpu", "value": "cpu0"}],
        ),
        NOW,
    )
    assert event["dedupe_keys"] == ["strategy_id", "target_type", "target", "bk_biz_id", "tags.cpu"]
    assert event["dedupe_md5"] == md5_of_list([12, "", None, 2, "cpu0"])


def test_dedupe_keys_that_are_not_a_list_are_ignored():
    event = clean_alert(alert(dedupe_keys="tags.cpu"), NOW)
    assert event["dedupe_keys"] == ["alert_name", "target_type", "target", "bk_biz_id"]


def test_a_missing_tag_in_dedupe_keys_counts_as_none():
    event = clean_alert(alert(dedupe_keys=["tags.nope"]), NOW)
    assert event["dedupe_md5"] == md5_of_list(["CPU usage high", "", None, 2, None])


@pytest.mark.parametrize(
    "target_type", ["K8S-POD", "K8S-NODE", "K8S-SERVICE", "K8S-WORKLOAD", "APM-SERVICE"]
)
def test_targetless_types_hash_without_target(target_type):
    event = clean_alert(alert(target_type=target_type, target="pod-7"), NOW)
    assert event["target"] == "pod-7"
    assert event["dedupe_md5"] == md5_of_list(["CPU usage high", "", None, 2])


def test_missing_time_falls_back_to_bk_ingest_time():
    data = alert(bk_ingest_time=1_799_999_500)
    del data["time"]
    assert clean_alert(data, NOW)["time"] == 1_799_999_500


@pytest.mark.parametrize(
    ("data_type", "cleaned"),
    [("TIME_SERIES", "time_series"), ("log", "log"), ("alert", "event"), (None, "event")],
)
def test_data_type(data_type, cleaned):
    assert clean_alert(alert(data_type=data_type), NOW)["data_type"] == cleaned


def test_a_metric_list_is_kept_and_a_missing_metric_is_empty():
    assert clean_alert(alert(metric=["a", "b"]), NOW)["metric"] == ["a", "b"]
    assert clean_alert(alert(), NOW)["metric"] == []


@pytest.mark.parametrize("field", ["event_id", "plugin_id", "alert_name", "bk_biz_id"])
def test_each_required_field_missing_is_rejected(field):
    data = alert()
    del data[field]
    with pytest.raises(Rejected, match=field) as caught:
        clean_alert(data, NOW)
    assert caught.value.reason == Reason.MISSING_FIELD


def test_no_time_at_all_is_rejected():
    data = alert()
    del data["time"]
    with pytest.raises(Rejected, match="bk_ingest_time") as caught:
        clean_alert(data, NOW)
    assert caught.value.reason == Reason.MISSING_FIELD


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("bk_biz_id", "two"),
        ("bk_biz_id", True),
        ("event_id", {"id": 1}),
        ("plugin_id", ""),
        ("strategy_id", "abc"),
        ("status", 3),
        ("time", "yesterday"),
        ("time", True),
        ("tags", {"cpu": "x"}),
        ("tags", [{"key": "cpu"}]),
        ("metric", 5),
        ("dedupe_keys", [1, 2]),
    ],
)
def test_mistyped_fields_are_rejected_naming_the_field(field, value):
    with pytest.raises(Rejected) as caught:
        clean_alert(alert(**{field: value}), NOW)
    assert caught.value.reason == Reason.WRONG_TYPE
    assert field in caught.value.error


def test_a_digit_string_business_id_is_accepted_as_given():
    assert clean_alert(alert(bk_biz_id="2"), NOW)["bk_biz_id"] == "2"


@pytest.mark.parametrize(
    ("age", "expired"), [(86_399, False), (86_400, False), (86_401, True), (3 * 86_400, True)]
)
def test_alerts_older_than_a_day_are_expired(age, expired):
    assert is_expired({"time": NOW - age}, NOW) is expired


def test_expiry_uses_the_origin_alarm_access_time_when_present():
    event = {
        "time": NOW - 3 * 86_400,
        "extra_info": {"origin_alarm": {"data": {"access_time": NOW}}},
    }
    assert not is_expired(event, NOW)


ascii_texts = st.text(st.characters(max_codepoint=127), max_size=6)
odd = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6)
texts = st.sampled_from(["host", "HOST", "K8S-POD", "topo", "", "zabbix", "recovered", "Closed"])
json_like = st.recursive(
    odd | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ascii_texts | texts, inner),
    max_leaves=6,
)
tag = st.fixed_dictionaries(
    {"key": st.text(max_size=5) | st.integers(), "value": json_like},
    optional={"display_key": st.text(max_size=4), "display_value": odd},
)
names = st.sampled_from(["CPU usage high", "Disk full", "zabbix", "rest_api"]) | st.text(max_size=6)
well_typed = st.fixed_dictionaries(
    {
        "event_id": st.text(max_size=6) | st.integers(),
        "plugin_id": names,
        "alert_name": names,
        "bk_biz_id": st.integers(-3, 9) | st.sampled_from(["2", " 3", "-1"]),
        "time": st.integers(0, 2_000_000_000) | st.floats(0, 2e9),
    },
    optional={
        "strategy_id": st.integers(0, 300) | st.just("201"),
        "status": texts,
        "target_type": texts,
        "target": texts | st.text(max_size=12),
        "severity": st.integers(-2, 9) | st.sampled_from(["1", "2", " 3", "high"]),
        "metric": texts | st.lists(texts, max_size=2),
        "data_type": st.sampled_from(["log", "Time_Series", "event"]),
        "tags": st.lists(tag, max_size=3),
        "dedupe_keys": st.lists(st.sampled_from(["tags.a", "tags.", "target", "target_type"])),
        "description": json_like,
    },
)
oddly_typed = st.fixed_dictionaries(
    {
        "event_id": st.text(max_size=6) | st.integers() | odd,
        "plugin_id": texts | odd,
        "alert_name": texts | odd,
        "bk_biz_id": st.integers(-3, 9) | st.sampled_from(["2", " 3", "-1", "two"]) | odd,
        "time": st.integers(0, 2_000_000_000) | odd,
    },
    optional={
        "strategy_id": st.integers(0, 300) | st.sampled_from(["201", "x"]) | odd,
        "status": texts | odd,
        "target_type": texts | odd,
        "severity": odd | st.sampled_from(["1", "2", " 3"]),
        "metric": texts | st.lists(texts, max_size=2) | odd,
        "bk_ingest_time": st.floats(0, 2e9) | odd,
        "tags": st.lists(tag, max_size=3) | st.lists(odd, max_size=2) | odd,
        "dedupe_keys": st.lists(odd, max_size=2) | odd,
    },
)


def outcome(clean, raw: dict) -> str:
    """What cleaning gives, as exact text: the event (types and key order) or the error."""
    try:
        return repr(clean(raw, NOW))
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


@settings(max_examples=500)
@given(well_typed | oddly_typed)
def test_same_event_or_error_as_main_before_the_speed_up(raw):
    """Today's clean_alert against main's (commit 33cd407) frozen in tests/main_33cd407.py."""
    assert outcome(clean_alert, raw) == outcome(main_33cd407.clean_alert, raw)


@pytest.mark.parametrize("twice", [1, 2])
def test_object_tag_values_equal_but_written_apart_each_get_their_own_text(twice):
    # 1, True and 1.0 are equal, as are 0.0 and -0.0; a remembered text must never be shared.
    values = [{"a": 1}, {"a": True}, {"a": 1.0}, {"a": 0.0}, {"a": -0.0}, {"a": None, "b": "x"}]
    for value in values * twice:
        event = clean_alert(alert(tags=[{"key": "k", "value": value}]), NOW)
        assert event["tags"][0]["value"] == json.dumps(value)


@given(
    st.dictionaries(
        ascii_texts | st.text(max_size=4),
        ascii_texts | texts | st.integers() | st.booleans() | st.none() | st.floats(),
        max_size=4,
    )
)
def test_object_tag_values_are_json_text_as_main_writes_it(value):
    event = clean_alert(alert(tags=[{"key": "k", "value": value}]), NOW)
    assert event["tags"][0]["value"] == json.dumps(value)


plainly_typed = st.fixed_dictionaries(
    {
        "event_id": st.text(max_size=6) | st.integers(),
        "plugin_id": names.filter(bool),
        "alert_name": names.filter(bool),
        "bk_biz_id": st.integers(-3, 9) | st.integers(),
        "time": st.integers(0, 2_000_000_000) | st.floats(0, 2e9),
    },
    optional={
        "strategy_id": st.integers(0, 300) | st.integers(),
        "status": texts | st.text(max_size=6),
        "target_type": texts | st.text(max_size=6),
        "target": texts | st.text(max_size=12) | st.integers() | st.none(),
        "severity": st.integers(-2, 9)
        | st.integers()
        | st.booleans()
        | st.sampled_from(["1", "2", " 3", "high", "1_0", "٣", "9" * 5000])
        | st.text(max_size=3),
        "metric": texts | st.lists(texts, max_size=2),
        "data_type": st.sampled_from(["log", "Time_Series", "event", "LOG", "ǅ"]),
        "bk_ingest_time": st.integers(0, 2_000_000_000) | st.floats(),
        "tags": st.lists(tag, max_size=3),
        "dedupe_keys": st.lists(
            st.sampled_from(
                ["tags.a", "tags.", "tags.0", "target", "target_type", "id", "access_time"]
            )
            | st.text(max_size=4)
        ),
        "description": json_like,
        "id": st.text(max_size=4),
        "access_time": odd,
        "extra_info": json_like,
    },
)


@settings(max_examples=500)
@given(plainly_typed)
def test_the_c_twin_cleans_a_usual_alert_exactly_as_the_python(raw):
    """operators/_native.c against this module's Python: the same event, types and key order
    (its JSON in Redis is byte for byte the same)."""
    event = _native.clean_alert(raw, NOW, _clean_tag_value)
    assert event is not None
    assert repr(event) == outcome(clean_alert_in_python, raw)


@settings(max_examples=300)
@given(well_typed | oddly_typed)
def test_the_c_twin_leaves_any_other_message_to_the_python(raw):
    event = _native.clean_alert(raw, NOW, _clean_tag_value)
    assert event is None or repr(event) == outcome(clean_alert_in_python, raw)


def test_every_usual_sample_alert_is_cleaned_by_the_c_twin():
    records = [SourceRecord("t", 0, i, m) for i, m in enumerate(sample_messages(500, int(NOW)))]
    native = 0
    for record in records:
        try:
            raw = decode_object(record, 1 << 20)
            expected = clean_alert_in_python(raw, NOW)
        except Rejected:
            continue
        event = _native.clean_alert(raw, NOW, _clean_tag_value)
        assert repr(event) == repr(expected)
        native += 1
    assert native > 450


@pytest.mark.parametrize("twice", [1, 2])
def test_remembered_dedupe_digests_tell_apart_values_equal_but_printed_apart(twice):
    # 1, True and 1.0 are equal, as are 0.0 and -0.0: each alert gets main's digest of its own.
    for target in [1, True, 1.0, "1", 0.0, -0.0, None, 0, False] * twice:
        event = clean_alert(alert(target=target, target_type="HOST"), NOW)
        values = ["CPU usage high", "HOST", target, 2]
        assert event["dedupe_md5"] == main_33cd407.count_md5(values)
