"""Incident sync messages, following bkmonitor's incident access (``service/access/incident``).

A sync message (``create`` or ``update``) is validated into a :class:`Sync`; :func:`apply_sync`
folds it into the incident's current document (or None) and says what changed. As in
bkmonitor: status is normalised to lower case; the document id is ``"{create_time}{id}"``; an
update of an unknown incident falls back to a create; ``update_attributes`` set each attribute
to its ``to`` value; ``end_time`` is set to the update time when the status becomes
recovering, recovered or merged and cleared when it becomes abnormal. A ``create`` in the
experience stage (``stage_exp`` with actions) only schedules a check in bkmonitor, so it
changes no document here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from operators.md5 import count_md5
from operators.rejects import Reason, Rejected

SYNC_TYPES = ("create", "update")
SEEN_LIMIT = 64
ENDED_STATUSES = ("recovering", "recovered", "merged")
ABNORMAL = "abnormal"
EXPERIENCE_STAGE = "stage_exp"
INFO_FIELDS = ("send_notice", "notice_config", "merge_info", "scope_id", "task_id")


@dataclass(frozen=True)
class Sync:
    """One validated sync message."""

    uid: str
    incident_id: str
    sync_type: str
    info: Mapping[str, Any]
    alerts: tuple[str, ...]
    update_attributes: Mapping[str, Any]
    stage: str | None
    has_actions: bool
    raw: Mapping[str, Any]


@dataclass(frozen=True)
class Change:
    """The incident's new document, its new status-history entry (if any) and its alerts."""

    incident_id: str
    document: dict[str, Any]
    history: dict[str, Any] | None
    alerts: tuple[str, ...]


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _wrong(field: str, expected: str, value: Any) -> Rejected:
    return Rejected(Reason.WRONG_TYPE, f"field '{field}' must be {expected}, got {value!r:.80}")


def _alert_ids(scope: Any) -> tuple[str, ...]:
    if scope is None:
        return ()
    if not isinstance(scope, Mapping) or not isinstance(scope.get("alerts", []), list):
        raise _wrong("scope", "an object whose 'alerts' is a list", scope)
    ids = []
    for alert in scope.get("alerts", []):
        alert_id = alert.get("id") if isinstance(alert, Mapping) else alert
        if not isinstance(alert_id, str | int) or isinstance(alert_id, bool):
            raise _wrong("scope.alerts", "alert ids or objects with an 'id'", alert)
        ids.append(str(alert_id))
    return tuple(dict.fromkeys(ids))


def parse_sync(data: Mapping[str, Any]) -> Sync:
    """Validate a decoded sync message; :class:`Rejected` names the field that is wrong."""
    for field in ("incident_id", "sync_type", "incident_info"):
        if field not in data:
            raise Rejected(Reason.MISSING_FIELD, f"required field '{field}' is missing")
    incident_id = data["incident_id"]
    if isinstance(incident_id, bool) or not isinstance(incident_id, str | int) or incident_id == "":
        raise _wrong("incident_id", "a string or an integer", incident_id)
    if data["sync_type"] not in SYNC_TYPES:
        raise _wrong("sync_type", "create or update", data["sync_type"])
    info = data["incident_info"]
    if not isinstance(info, Mapping):
        raise _wrong("incident_info", "an object", info)
    for field in ("bk_biz_id", "status", "create_time", "update_time"):
        if field not in info:
            raise Rejected(
                Reason.MISSING_FIELD, f"required field 'incident_info.{field}' is missing"
            )
    if not isinstance(info["status"], str):
        raise _wrong("incident_info.status", "a string", info["status"])
    for field in ("create_time", "update_time"):
        if not _number(info[field]):
            raise _wrong(f"incident_info.{field}", "epoch seconds (a number)", info[field])
    attributes = data.get("update_attributes") or {}
    if not isinstance(attributes, Mapping) or not all(
        isinstance(change, Mapping) and "to" in change for change in attributes.values()
    ):
        raise _wrong("update_attributes", "an object of {attribute: {from, to}}", attributes)
    return Sync(
        uid=count_md5(dict(data)),
        incident_id=str(incident_id),
        sync_type=data["sync_type"],
        info=info,
        alerts=_alert_ids(data.get("scope")),
        update_attributes=attributes,
        stage=data.get("incident_stage"),
        has_actions=bool(data.get("incident_actions")),
        raw=data,
    )


def is_experience_stage(sync: Sync) -> bool:
    """bkmonitor only schedules a check for these; they change no document."""
    return sync.sync_type == "create" and sync.stage == EXPERIENCE_STAGE and sync.has_actions


def _created(sync: Sync) -> dict[str, Any]:
    info = sync.info
    document = {
        "id": f"{int(info['create_time'])}{sync.incident_id}",
        "incident_id": sync.incident_id,
        "bk_biz_id": info["bk_biz_id"],
        "status": info["status"].lower(),
        "create_time": info["create_time"],
        "update_time": info["update_time"],
        "begin_time": info.get("begin_time", info["create_time"]),
        "end_time": None,
        "rca_time": sync.raw.get("rca_time"),
        "snapshot_id": None
        if sync.raw.get("fpp_snapshot_id") in (None, "fpp:None")
        else sync.raw["fpp_snapshot_id"],
        "alert_count": len(sync.alerts),
    }
    document.update({field: info[field] for field in INFO_FIELDS if field in info})
    return document


def apply_sync(document: Mapping[str, Any] | None, sync: Sync) -> Change:
    """Fold ``sync`` into the incident's current ``document`` (None if unknown). A create
    builds the document anew, as bkmonitor re-creates it."""
    before = None if document is None else document.get("status")
    fresh = document is None or sync.sync_type == "create"
    updated = _created(sync) if fresh else dict(document)
    if not fresh:
        updated["update_time"] = max(updated["update_time"], sync.info["update_time"])
        updated["status"] = sync.info["status"].lower()
        updated["alert_count"] = len(set(sync.alerts)) or updated.get("alert_count", 0)
    for attribute, change in sync.update_attributes.items():
        updated[attribute] = (
            change["to"].lower()
            if attribute == "status" and isinstance(change["to"], str)
            else change["to"]
        )
    status = updated["status"]
    if status in ENDED_STATUSES and (fresh or before != status):
        updated["end_time"] = sync.info["update_time"]
    elif status == ABNORMAL:
        updated["end_time"] = None
    history = (
        {"status": status, "time": sync.info["update_time"], "sync_type": sync.sync_type}
        if status != before
        else None
    )
    return Change(sync.incident_id, updated, history, sync.alerts)


@dataclass(frozen=True)
class IncidentState:
    """What a flow keeps per incident: its document and the ids of its latest sync messages,
    so that a message delivered twice is folded in once."""

    document: dict[str, Any]
    seen: tuple[str, ...]


def fold(state: IncidentState | None, sync: Sync) -> tuple[IncidentState | None, Change | None]:
    """The incident's next state, and its change (None for a message already folded in)."""
    if state is not None and sync.uid in state.seen:
        return state, None
    change = apply_sync(None if state is None else state.document, sync)
    seen = (*(() if state is None else state.seen), sync.uid)[-SEEN_LIMIT:]
    return IncidentState(change.document, seen), change
