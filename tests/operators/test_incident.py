"""Incident sync messages folded into documents, as bkmonitor's incident access does.

Every expectation is worked out by hand from ``bkmonitor/alarm_backends/service/access/
incident/processor.py`` (``AccessIncidentProcess.create_incident``, ``update_incident``,
``normalize_incident_status``, ``check_incident_actions``), ``bkmonitor/documents/incident.py``
(``IncidentDocument.__init__``: id ``f"{create_time}{incident_id}"``), ``constants/incident.py``
(``IncidentStatus.order``) and ``bkmonitor/aiops/incident/operation.py``
(``record_create_incident``, ``record_update_incident``). The messages follow the shape of
``tests/service/access/incident/test_processor.py``'s ``create_sync_info`` (that test asserts
nothing, and its create lacks ``rca_time``, which ``create_incident`` reads: bkmonitor would
log an error and create nothing; the code wins).
"""

from __future__ import annotations

import pytest

from operators.incident import SEEN_LIMIT, apply_sync, fold, is_final, only_schedules, parse_sync
from operators.rejects import Reason, Rejected

CREATED = 1_720_061_828
INFO = {
    "incident_name": "故障聚集在('BkNodeHost', '0#xx.xx.xx.xx')",
    "incident_reason": "我是故障原因占位",
    "status": "abnormal",
    "level": "ERROR",
    "labels": ["游戏", "异常", "时序"],
    "create_time": CREATED,
    "update_time": CREATED,
    "begin_time": CREATED,
    "assignees": ["admin"],
    "handlers": ["admin"],
    "bk_biz_id": 2,
}
ALERTS = [171151054379656, 171151054379650]


def message(sync_type: str = "create", **extra) -> dict:
    info = {**INFO, **extra.pop("info", {})}
    return {
        "sync_type": sync_type,
        "sync_time": CREATED,
        "incident_id": 16235,
        "incident_info": info,
        "fpp_snapshot_id": "fpp:None",
        "rca_time": CREATED,
        "scope": {"bk_biz_ids": [2], "alerts": extra.pop("alerts", ALERTS), "events": []},
        **extra,
    }


def snapshot(alerts: list = ALERTS, status: str = "abnormal") -> dict:
    """``IncidentSnapshotDocument`` of an ``fpp:None`` message (``create_incident``)."""
    return {
        "incident_id": 16235,
        "bk_biz_ids": [2],
        "status": status,
        "alerts": alerts,
        "events": [],
        "create_time": CREATED,
        "content": {
            "bk_biz_id": 2,
            "incident_alerts": [{"id": a} for a in alerts],
            "rca_summary": {"bk_biz_ids": [2]},
        },
        "fpp_snapshot_id": "fpp:None",
    }


def created() -> dict:
    return apply_sync(None, parse_sync(message())).document


def test_create_keeps_incident_info_as_the_document():
    """``IncidentDocument(**incident_info)`` after the pops, plus snapshot, status_order and
    alert_count; one ``incident_create`` record at ``create_time``."""
    info = {"send_notice": True, "notice_config": {}, "task_id": 9, "status": "ABNORMAL"}
    change = apply_sync(None, parse_sync(message(info=info)))
    assert change.document == {
        **INFO,
        "incident_id": 16235,
        "id": f"{CREATED}16235",
        "snapshot": snapshot(),
        "status_order": 0,
        "alert_count": 2,
    }
    assert change.history == (
        {"operation_type": "incident_create", "time": CREATED, "alert_count": 2},
    )
    assert change.alerts == ("171151054379656", "171151054379650")


def test_create_of_a_merged_incident_keeps_its_merge_info():
    merge = {"origin_incident_id": 16235, "target_incident_id": 16300}
    change = apply_sync(None, parse_sync(message(info={"status": "merged", "merge_info": merge})))
    assert change.document["extra_info"] == {"merge_info": merge}
    assert change.document["status_order"] == 4
    assert "merge_info" not in change.document


def test_an_update_changes_only_what_update_attributes_names():
    """``update_incident``: snapshot and alert count from the message, each attribute to its
    ``to``; ``incident_info`` (here recovered, a later update_time) is not copied over."""
    update = message(
        "update",
        info={"status": "recovered", "update_time": CREATED + 60, "level": "INFO"},
        alerts=[*ALERTS, 3],
        update_attributes={"level": {"from": "ERROR", "to": "WARN"}},
    )
    change = apply_sync(created(), parse_sync(update))
    assert change.document == {
        **created(),
        "level": "WARN",
        "snapshot": snapshot([*ALERTS, 3], "recovered"),
        "alert_count": 3,
    }
    assert change.history == (
        {
            "operation_type": "incident_update",
            "time": CREATED + 60,
            "incident_key": "level",
            "from": "ERROR",
            "to": "WARN",
        },
    )


@pytest.mark.parametrize(
    ("before", "to", "operation", "end_time", "order"),
    [
        ("abnormal", "RECOVERING", "incident_observe", CREATED + 60, 1),
        ("abnormal", "recovered", "incident_recover", CREATED + 60, 2),
        ("abnormal", "merged", "incident_merge", CREATED + 60, 4),
        ("recovering", "abnormal", "incident_reopen", None, 0),
    ],
)
def test_a_status_change_with_a_from_sets_end_time_and_records_its_operation(
    before, to, operation, end_time, order
):
    document = {**created(), "status": before, "end_time": CREATED + 30}
    update = message(
        "update",
        info={"update_time": CREATED + 60},
        update_attributes={"status": {"from": before, "to": to}},
    )
    change = apply_sync(document, parse_sync(update))
    assert change.document["status"] == to.lower()
    assert (change.document["end_time"], change.document["status_order"]) == (end_time, order)
    assert change.history == ({"operation_type": operation, "time": CREATED + 60},)


def test_closed_keeps_end_time_and_is_an_update_record():
    update = message("update", update_attributes={"status": {"from": "abnormal", "to": "closed"}})
    change = apply_sync(created(), parse_sync(update))
    assert (change.document["status"], change.document.get("end_time")) == ("closed", None)
    assert change.history[0]["operation_type"] == "incident_update"


def test_an_empty_from_changes_the_attribute_without_history_or_end_time():
    update = message("update", update_attributes={"status": {"from": "", "to": "recovered"}})
    change = apply_sync(created(), parse_sync(update))
    assert change.document["status"] == "recovered"
    assert "end_time" not in change.document
    assert change.history == ()


def test_an_update_without_update_attributes_changes_snapshot_and_alert_count_only():
    change = apply_sync(created(), parse_sync(message("update", alerts=[1])))
    assert change.document == {**created(), "snapshot": snapshot([1]), "alert_count": 1}
    assert change.history == ()


def test_an_update_of_an_unknown_incident_is_created_without_its_attributes():
    """The ``IncidentNotFoundError`` branch: ``create_incident(sync_info)`` and return."""
    update = message(
        "update",
        info={"update_time": CREATED + 60},
        update_attributes={"level": {"from": "ERROR", "to": "WARN"}},
    )
    change = apply_sync(None, parse_sync(update))
    assert change.document["level"] == "ERROR"
    assert change.document["update_time"] == CREATED + 60
    assert change.history == (
        {"operation_type": "incident_create", "time": CREATED, "alert_count": 2},
    )


def test_experience_stage_creates_only_schedule():
    staged = {"incident_stage": "stage_exp", "incident_actions": [{"a": 1}]}
    state, changes, drops = fold(None, parse_sync(message(**staged)))
    assert (state, changes, drops) == (None, [], ["experience_stage"])
    assert only_schedules(None, parse_sync(message("update", **staged)))
    known, _, _ = fold(None, parse_sync(message()))
    assert not only_schedules(known, parse_sync(message("update", **staged)))
    assert not only_schedules(None, parse_sync(message(incident_stage="stage_exp")))


def test_the_sync_id_does_not_depend_on_key_order():
    data = message()
    assert parse_sync(data).uid == parse_sync(dict(reversed(list(data.items())))).uid


@pytest.mark.parametrize(
    ("mutate", "reason", "field"),
    [
        (lambda m: m.pop("incident_id"), Reason.MISSING_FIELD, "incident_id"),
        (lambda m: m.pop("incident_info"), Reason.MISSING_FIELD, "incident_info"),
        (lambda m: m.pop("scope"), Reason.MISSING_FIELD, "scope"),
        (lambda m: m["scope"].pop("events"), Reason.MISSING_FIELD, "scope.events"),
        (lambda m: m.pop("rca_time"), Reason.MISSING_FIELD, "rca_time"),
        (lambda m: m.pop("fpp_snapshot_id"), Reason.MISSING_FIELD, "fpp_snapshot_id"),
        (lambda m: m["incident_info"].pop("bk_biz_id"), Reason.MISSING_FIELD, "bk_biz_id"),
        (lambda m: m["incident_info"].pop("create_time"), Reason.MISSING_FIELD, "create_time"),
        (lambda m: m.update(sync_type="delete"), Reason.WRONG_TYPE, "sync_type"),
        (lambda m: m.update(incident_id=True), Reason.WRONG_TYPE, "incident_id"),
        (lambda m: m.update(incident_info=[1]), Reason.WRONG_TYPE, "incident_info"),
        (lambda m: m["incident_info"].pop("status"), Reason.MISSING_FIELD, "incident_info.status"),
        (lambda m: m["incident_info"].update(status=3), Reason.WRONG_TYPE, "incident_info.status"),
        (lambda m: m["incident_info"].update(status="gone"), Reason.WRONG_TYPE, "status"),
        (lambda m: m["incident_info"].update(update_time="now"), Reason.WRONG_TYPE, "update_time"),
        (lambda m: m["incident_info"].update(extra_info=[1]), Reason.WRONG_TYPE, "extra_info"),
        (lambda m: m.update(scope={"alerts": "a1"}), Reason.MISSING_FIELD, "scope.bk_biz_ids"),
        (lambda m: m["scope"].update(alerts="a1"), Reason.WRONG_TYPE, "scope.alerts"),
        (lambda m: m["scope"].update(alerts=[{"id": 1}]), Reason.WRONG_TYPE, "scope.alerts"),
        (lambda m: m.update(update_attributes={"x": 1}), Reason.WRONG_TYPE, "update_attributes"),
        (
            lambda m: m.update(update_attributes={"level": {"to": "WARN"}}),
            Reason.WRONG_TYPE,
            "update_attributes.level",
        ),
        (
            lambda m: m.update(update_attributes={"status": {"from": 1, "to": "gone"}}),
            Reason.WRONG_TYPE,
            "update_attributes.status.to",
        ),
    ],
)
def test_bad_messages_are_rejected_naming_the_field(mutate, reason, field):
    data = message()
    mutate(data)
    with pytest.raises(Rejected) as caught:
        parse_sync(data)
    assert caught.value.reason == reason
    assert field in caught.value.error


def test_an_update_needs_update_time():
    data = message("update")
    del data["incident_info"]["update_time"]
    with pytest.raises(Rejected, match="update_time"):
        parse_sync(data)


def test_fold_takes_a_message_delivered_twice_once():
    create = parse_sync(message())
    update = parse_sync(
        message("update", update_attributes={"status": {"from": "abnormal", "to": "recovered"}})
    )
    state, first, _ = fold(None, create)
    state, second, _ = fold(state, update)
    same_state, repeat, drops = fold(state, create)
    assert (len(first), len(second), repeat, drops) == (1, 1, [], ["duplicate"])
    assert same_state == state
    assert state.document["status"] == "recovered"


def test_fold_remembers_a_bounded_number_of_messages():
    state = None
    for minute in range(SEEN_LIMIT + 10):
        state, _, _ = fold(state, parse_sync(message("update", info={"update_time": minute})))
    assert len(state.seen) == SEEN_LIMIT


@pytest.mark.parametrize(
    ("status", "final"),
    [
        ("abnormal", False),
        ("recovering", False),
        ("recovered", True),
        ("closed", True),
        ("merged", True),
    ],
)
def test_a_recovered_closed_or_merged_incident_is_final(status, final):
    state, _, _ = fold(None, parse_sync(message(info={"status": status})))
    assert state.document["status"] == status
    assert is_final(state) is final


@pytest.mark.parametrize("status", [["abnormal"], {"from": "abnormal", "to": "recovered"}])
def test_a_status_of_an_unhashable_type_is_a_wrong_type_not_an_internal_error(status):
    """Found by fuzzing: a list or object status raised TypeError (``unhashable type``) in the
    ``STATUS_ORDER`` lookup, which the flow dead-lettered as ``internal_error``."""
    with pytest.raises(Rejected) as caught:
        parse_sync(message(info={"status": status}))
    assert caught.value.reason is Reason.WRONG_TYPE
    attributes = {"status": {"from": "abnormal", "to": [status]}}
    with pytest.raises(Rejected) as caught:
        parse_sync(message("update", update_attributes=attributes))
    assert caught.value.reason is Reason.WRONG_TYPE
