"""Incident sync messages folded into documents, as bkmonitor's incident access does."""

from __future__ import annotations

import pytest

from operators.incident import SEEN_LIMIT, apply_sync, fold, is_experience_stage, parse_sync
from operators.rejects import Reason, Rejected


def message(sync_type="create", status="ABNORMAL", update_time=1_800_000_100, **extra) -> dict:
    info = {
        "bk_biz_id": 2,
        "status": status,
        "create_time": 1_800_000_000,
        "update_time": update_time,
        **extra.pop("info", {}),
    }
    return {
        "incident_id": 7001,
        "sync_type": sync_type,
        "incident_info": info,
        "fpp_snapshot_id": "fpp:None",
        "scope": {"bk_biz_ids": [2], "alerts": [{"id": "a1"}, "a2", "a1"]},
        **extra,
    }


def test_create_builds_the_document():
    change = apply_sync(None, parse_sync(message(info={"send_notice": True})))
    assert change.document == {
        "id": "18000000007001",
        "incident_id": "7001",
        "bk_biz_id": 2,
        "status": "abnormal",
        "create_time": 1_800_000_000,
        "update_time": 1_800_000_100,
        "begin_time": 1_800_000_000,
        "end_time": None,
        "rca_time": None,
        "snapshot_id": None,
        "alert_count": 2,
        "send_notice": True,
    }
    assert change.history == {"status": "abnormal", "time": 1_800_000_100, "sync_type": "create"}
    assert change.alerts == ("a1", "a2")


@pytest.mark.parametrize(
    ("status", "end_time"),
    [
        ("RECOVERED", 1_800_000_500),
        ("recovering", 1_800_000_500),
        ("merged", 1_800_000_500),
        ("closed", None),
    ],
)
def test_an_ending_status_sets_end_time(status, end_time):
    created = apply_sync(None, parse_sync(message())).document
    change = apply_sync(created, parse_sync(message("update", status, 1_800_000_500)))
    assert change.document["end_time"] == end_time
    assert change.history["status"] == status.lower()


def test_back_to_abnormal_clears_end_time():
    created = apply_sync(None, parse_sync(message())).document
    ended = apply_sync(created, parse_sync(message("update", "recovered", 1_800_000_500))).document
    reopened = apply_sync(ended, parse_sync(message("update", "abnormal", 1_800_000_900)))
    assert reopened.document["end_time"] is None
    assert reopened.document["update_time"] == 1_800_000_900
    assert reopened.history == {"status": "abnormal", "time": 1_800_000_900, "sync_type": "update"}


def test_an_update_without_a_status_change_adds_no_history():
    created = apply_sync(None, parse_sync(message())).document
    change = apply_sync(created, parse_sync(message("update", "abnormal", 1_800_000_300)))
    assert change.history is None
    assert change.document["update_time"] == 1_800_000_300


def test_an_update_of_an_unknown_incident_falls_back_to_create():
    change = apply_sync(None, parse_sync(message("update", "recovered", 1_800_000_500)))
    assert change.document["id"] == "18000000007001"
    assert change.document["end_time"] == 1_800_000_500
    assert change.history["sync_type"] == "update"


def test_update_attributes_are_applied_and_status_is_lower_cased():
    created = apply_sync(None, parse_sync(message())).document
    sync = parse_sync(
        message(
            "update",
            update_attributes={
                "incident_name": {"from": "old", "to": "disk storm"},
                "status": {"from": "abnormal", "to": "RECOVERED"},
            },
        )
    )
    document = apply_sync(created, sync).document
    assert document["incident_name"] == "disk storm"
    assert document["status"] == "recovered"
    assert document["end_time"] == 1_800_000_100


def test_experience_stage_creates_are_recognised():
    assert is_experience_stage(
        parse_sync(message(incident_stage="stage_exp", incident_actions=[{"a": 1}]))
    )
    assert not is_experience_stage(parse_sync(message(incident_stage="stage_exp")))
    assert not is_experience_stage(
        parse_sync(message("update", incident_stage="stage_exp", incident_actions=[1]))
    )


def test_the_sync_id_does_not_depend_on_key_order():
    data = message()
    assert parse_sync(data).uid == parse_sync(dict(reversed(list(data.items())))).uid


@pytest.mark.parametrize(
    ("mutate", "reason", "field"),
    [
        (lambda m: m.pop("incident_id"), Reason.MISSING_FIELD, "incident_id"),
        (lambda m: m.pop("incident_info"), Reason.MISSING_FIELD, "incident_info"),
        (lambda m: m.update(sync_type="delete"), Reason.WRONG_TYPE, "sync_type"),
        (lambda m: m.update(incident_id=True), Reason.WRONG_TYPE, "incident_id"),
        (lambda m: m.update(incident_info=[1]), Reason.WRONG_TYPE, "incident_info"),
        (lambda m: m["incident_info"].pop("status"), Reason.MISSING_FIELD, "incident_info.status"),
        (lambda m: m["incident_info"].update(status=3), Reason.WRONG_TYPE, "incident_info.status"),
        (lambda m: m["incident_info"].update(update_time="now"), Reason.WRONG_TYPE, "update_time"),
        (lambda m: m.update(scope={"alerts": "a1"}), Reason.WRONG_TYPE, "scope"),
        (lambda m: m.update(scope={"alerts": [{"name": "x"}]}), Reason.WRONG_TYPE, "scope.alerts"),
        (lambda m: m.update(update_attributes={"x": 1}), Reason.WRONG_TYPE, "update_attributes"),
    ],
)
def test_bad_messages_are_rejected_naming_the_field(mutate, reason, field):
    data = message()
    mutate(data)
    with pytest.raises(Rejected) as caught:
        parse_sync(data)
    assert caught.value.reason == reason
    assert field in caught.value.error


def test_a_create_for_a_known_incident_builds_the_document_anew():
    created = apply_sync(None, parse_sync(message(info={"task_id": 1}))).document
    ended = apply_sync(created, parse_sync(message("update", "recovered", 1_800_000_500))).document
    again = apply_sync(ended, parse_sync(message(update_time=1_800_000_600)))
    assert again.document["status"] == "abnormal"
    assert again.document["end_time"] is None
    assert again.history["status"] == "abnormal"


def test_fold_takes_a_message_delivered_twice_once():
    create, update = parse_sync(message()), parse_sync(message("update", "recovered"))
    state, first = fold(None, create)
    state, second = fold(state, update)
    same_state, repeat = fold(state, create)
    assert first is not None and second is not None
    assert repeat is None
    assert same_state == state
    assert state.document["status"] == "recovered"


def test_fold_remembers_a_bounded_number_of_messages():
    state = None
    for minute in range(SEEN_LIMIT + 10):
        state, _ = fold(state, parse_sync(message("update", update_time=1_800_000_000 + minute)))
    assert len(state.seen) == SEEN_LIMIT
