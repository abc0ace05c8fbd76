"""Incident sync messages, following bkmonitor's ``access/incident/processor.py``.

A sync message (``create`` or ``update``) is validated into a :class:`Sync`; :func:`apply_sync`
folds it into the incident's current document (or None) and says what changed.

- **create** (``create_incident``): the document is ``incident_info`` itself
  (``IncidentDocument(**incident_info)``: name, reason, level, labels, ...), less
  ``send_notice``, ``notice_config``, ``scope_id``, ``task_id`` and ``merge_info``, with the
  incident id, the status lower-cased, ``merge_info`` under ``extra_info`` when the status is
  ``merged``, the snapshot, ``status_order`` and ``alert_count``; its id is
  ``"{create_time}{incident_id}"``. One history record, ``incident_create`` at ``create_time``.
  A create in the experience stage (``stage_exp`` with actions) only schedules a check in
  bkmonitor, so it changes no document (:func:`only_schedules`).
- **update** (``update_incident``) of a known incident: only the snapshot, ``alert_count`` and
  the attributes ``update_attributes`` names change; ``incident_info`` is never copied over
  the document. Each attribute takes its ``to`` value; one whose ``from`` is truthy also
  gets a history record at ``update_time`` (required for updates), and for ``status`` sets
  ``end_time`` to ``update_time`` (recovering, recovered, merged) or clears it (abnormal). An
  empty ``from`` changes the attribute without history or ``end_time``.
- **update** of an unknown incident: created from the message as a create is (above), and
  ``update_attributes`` are not applied.

What a message must hold is what bkmonitor's processor reads unconditionally: ``incident_id``,
``sync_type``, ``incident_info`` with ``bk_biz_id``, ``status`` and ``create_time``,
``fpp_snapshot_id`` (creates), ``rca_time``, and ``scope`` with ``bk_biz_ids``, ``alerts`` and
``events``. bkmonitor logs an error and drops a message without them (an update without
``scope`` changes nothing); alarmflow sends it to the DLQ as ``missing_field``, so that it is
seen. A status that is not one of bkmonitor's (``IncidentStatus``) is ``wrong_type``: bkmonitor
fails on it half-way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from operators.drops import Drop
from operators.md5 import count_md5
from operators.rejects import Reason, Rejected, preview

SYNC_TYPES = ("create", "update")
SEEN_LIMIT = 64
STATUS_ORDER = {"abnormal": 0, "recovering": 1, "recovered": 2, "closed": 3, "merged": 4}
"""``IncidentStatus`` and its ``order``."""
ENDED_STATUSES = ("recovering", "recovered", "merged")
FINAL_STATUSES = ("recovered", "closed", "merged")
"""Statuses after which an incident normally hears no more (:func:`is_final`)."""
ABNORMAL = "abnormal"
EXPERIENCE_STAGE = "stage_exp"
NOT_IN_DOCUMENT = ("send_notice", "notice_config", "scope_id", "task_id", "merge_info")
"""``incident_info`` fields ``create_incident`` pops before building the document."""
STATUS_OPERATIONS = {"recovered": "incident_recover", "recovering": "incident_observe"}
"""``record_update_incident``: the status changes that have their own operation type."""


@dataclass(frozen=True)
class Sync:
    """One validated sync message."""

    uid: str
    incident_id: str
    sync_type: str
    info: Mapping[str, Any]
    scope: Mapping[str, Any]
    update_attributes: Mapping[str, Mapping[str, Any]]
    raw: Mapping[str, Any]

    @property
    def alerts(self) -> tuple[str, ...]:
        """The scope's alert ids, as the alert links keep them."""
        return tuple(dict.fromkeys(str(alert) for alert in self.scope["alerts"]))


@dataclass(frozen=True)
class Change:
    """The incident's new document, its new history records and its alerts."""

    incident_id: str
    document: dict[str, Any]
    history: tuple[dict[str, Any], ...]
    alerts: tuple[str, ...]


def _missing(field: str) -> Rejected:
    return Rejected(Reason.MISSING_FIELD, f"required field '{field}' is missing")


def _require(obj: Mapping[str, Any], fields: tuple[str, ...], where: str = "") -> None:
    for field in fields:
        if field not in obj:
            raise _missing(f"{where}{field}")


def _wrong(field: str, expected: str, value: Any) -> Rejected:
    return Rejected(Reason.WRONG_TYPE, f"field '{field}' must be {expected}, got {preview(value)}")


def normalize_status(status: Any) -> Any:
    """``normalize_incident_status``: a known status in any case becomes lower case."""
    if isinstance(status, str) and status.lower() in STATUS_ORDER:
        return status.lower()
    return status


def _known_status(status: Any, field: str) -> str:
    status = normalize_status(status)
    if not isinstance(status, str) or status not in STATUS_ORDER:
        raise _wrong(field, f"one of {', '.join(STATUS_ORDER)}", status)
    return status


def _scope(data: Mapping[str, Any]) -> Mapping[str, Any]:
    _require(data, ("scope",))
    scope = data["scope"]
    if not isinstance(scope, Mapping):
        raise _wrong("scope", "an object", scope)
    _require(scope, ("bk_biz_ids", "alerts", "events"), "scope.")
    for field in ("bk_biz_ids", "alerts", "events"):
        if not isinstance(scope[field], list):
            raise _wrong(f"scope.{field}", "a list", scope[field])
    for alert in scope["alerts"]:
        if isinstance(alert, bool) or not isinstance(alert, str | int):
            raise _wrong("scope.alerts", "alert ids", alert)
    return scope


def _attributes(data: Mapping[str, Any]) -> Mapping[str, Mapping[str, Any]]:
    attributes = data.get("update_attributes") or {}
    if not isinstance(attributes, Mapping):
        raise _wrong("update_attributes", "an object of {attribute: {from, to}}", attributes)
    for name, change in attributes.items():
        if not isinstance(change, Mapping) or "from" not in change or "to" not in change:
            raise _wrong(f"update_attributes.{name}", "an object with 'from' and 'to'", change)
        if name == "status":
            _known_status(change["to"], "update_attributes.status.to")
    return attributes


def parse_sync(data: Mapping[str, Any]) -> Sync:
    """Validate a decoded sync message; :class:`Rejected` names the field that is wrong."""
    _require(data, ("incident_id", "sync_type", "incident_info"))
    incident_id = data["incident_id"]
    if isinstance(incident_id, bool) or not isinstance(incident_id, str | int) or incident_id == "":
        raise _wrong("incident_id", "a string or an integer", incident_id)
    if data["sync_type"] not in SYNC_TYPES:
        raise _wrong("sync_type", "create or update", data["sync_type"])
    info = data["incident_info"]
    if not isinstance(info, Mapping):
        raise _wrong("incident_info", "an object", info)
    _require(info, ("bk_biz_id", "status", "create_time"), "incident_info.")
    for field in ("create_time", "update_time"):
        value = info.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise _wrong(f"incident_info.{field}", "epoch seconds (a number)", value)
    _known_status(info["status"], "incident_info.status")
    extra = info.get("extra_info")
    if extra is not None and not isinstance(extra, Mapping):
        # bkmonitor's document keeps merge_info in it; an incident created with another
        # type would fail every later merge of it.
        raise _wrong("incident_info.extra_info", "an object", extra)
    if data["sync_type"] == "update" and "update_time" not in info:
        raise _missing("incident_info.update_time")
    if "rca_time" not in data:
        raise _missing("rca_time")
    if data["sync_type"] == "create" and "fpp_snapshot_id" not in data:
        raise _missing("fpp_snapshot_id")
    return Sync(
        uid=count_md5(dict(data)),
        incident_id=str(incident_id),
        sync_type=data["sync_type"],
        info=info,
        scope=_scope(data),
        update_attributes=_attributes(data),
        raw=data,
    )


def only_schedules(state: IncidentState | None, sync: Sync) -> bool:
    """``check_incident_actions``: a message that would create the incident (a create, or an
    update of an unknown incident) in the experience stage with actions only schedules a check
    in bkmonitor; it changes no document."""
    creates = state is None or sync.sync_type == "create"
    return (
        creates
        and sync.raw.get("incident_stage") == EXPERIENCE_STAGE
        and bool(sync.raw.get("incident_actions"))
    )


def document_id(info: Mapping[str, Any], incident_id: str) -> str:
    """``IncidentDocument``'s id: ``f"{create_time}{incident_id}"`` (the document and its
    snapshot keep the message's ``incident_id`` as it is, number or string)."""
    return f"{info['create_time']}{incident_id}"


def snapshot(sync: Sync) -> dict[str, Any]:
    """The ``IncidentSnapshotDocument`` an ``fpp:None`` message makes. bkmonitor fetches the
    content of any other snapshot id from the AIOps API, which alarmflow has no access to: it
    builds the same content from the message and keeps the snapshot id."""
    scope, biz = sync.scope, sync.info["bk_biz_id"]
    return {
        "incident_id": sync.raw["incident_id"],
        "bk_biz_ids": scope["bk_biz_ids"],
        "status": normalize_status(sync.info["status"]),
        "alerts": scope["alerts"],
        "events": scope["events"],
        "create_time": sync.raw["rca_time"],
        "content": {
            "bk_biz_id": biz,
            "incident_alerts": [{"id": alert} for alert in scope["alerts"]],
            "rca_summary": {"bk_biz_ids": [biz]},
        },
        "fpp_snapshot_id": sync.raw.get("fpp_snapshot_id") or "fpp:None",
    }


def _created(sync: Sync) -> Change:
    info = {k: v for k, v in sync.info.items() if k not in NOT_IN_DOCUMENT}
    status = normalize_status(info["status"])
    incident_id = sync.raw["incident_id"]
    document: dict[str, Any] = {**info, "incident_id": incident_id, "status": status}
    merge_info = sync.info.get("merge_info")
    if status == "merged" and isinstance(merge_info, Mapping) and merge_info:
        document["extra_info"] = {**(info.get("extra_info") or {}), "merge_info": merge_info}
    document.setdefault("id", document_id(sync.info, sync.incident_id))
    document["snapshot"] = snapshot(sync)
    document["status_order"] = STATUS_ORDER[status]
    document["alert_count"] = len(sync.scope["alerts"])
    record = {
        "operation_type": "incident_create",
        "time": info["create_time"],
        "alert_count": len(sync.scope["alerts"]),
    }
    return Change(sync.incident_id, document, (record,), sync.alerts)


def _operation(name: str, change: Mapping[str, Any], at: Any) -> dict[str, Any]:
    """``record_update_incident``'s record (raw values; bkmonitor stores display aliases)."""
    old, new = change["from"], normalize_status(change["to"]) if name == "status" else change["to"]
    kind = "incident_update"
    if name == "status":
        kind = STATUS_OPERATIONS.get(new, kind)
        if new == "merged":
            kind = "incident_merge"
        elif new == ABNORMAL and normalize_status(old) == "recovering":
            kind = "incident_reopen"
    if kind == "incident_update":
        return {"operation_type": kind, "time": at, "incident_key": name, "from": old, "to": new}
    return {"operation_type": kind, "time": at}


def _updated(document: Mapping[str, Any], sync: Sync) -> Change:
    updated = dict(document)
    updated["snapshot"] = snapshot(sync)
    updated["alert_count"] = len(sync.scope["alerts"])
    merge_info = sync.info.get("merge_info") or {}
    status_to = normalize_status(sync.update_attributes.get("status", {}).get("to"))
    if status_to == "merged" and isinstance(merge_info, Mapping) and merge_info:
        updated["extra_info"] = {**(updated.get("extra_info") or {}), "merge_info": merge_info}
    at = sync.info.get("update_time")
    history = []
    for name, change in sync.update_attributes.items():
        new = normalize_status(change["to"]) if name == "status" else change["to"]
        if change["from"]:
            if name == "status" and new in ENDED_STATUSES:
                updated["end_time"] = at
            elif name == "status" and new == ABNORMAL:
                updated["end_time"] = None
            history.append(_operation(name, change, at))
        updated[name] = new
    updated["status_order"] = STATUS_ORDER[updated["status"]]
    return Change(sync.incident_id, updated, tuple(history), sync.alerts)


def apply_sync(document: Mapping[str, Any] | None, sync: Sync) -> Change:
    """Fold ``sync`` into the incident's current ``document`` (None if unknown). A create
    builds the document anew, as bkmonitor re-creates it; so does an update of an unknown
    incident (its fallback create)."""
    if document is None or sync.sync_type == "create":
        return _created(sync)
    return _updated(document, sync)


@dataclass(frozen=True)
class IncidentState:
    """What a flow keeps per incident: its document and the ids of its latest sync messages,
    so that a message delivered twice is folded in once."""

    document: dict[str, Any]
    seen: tuple[str, ...]


def is_final(state: IncidentState) -> bool:
    """Whether the incident is recovered, closed or merged: a flow may forget it once it has
    been quiet for long (an update after that builds its document anew, as bkmonitor's
    fallback create of an update to an unknown incident does)."""
    return state.document.get("status") in FINAL_STATUSES


def fold(
    state: IncidentState | None, sync: Sync
) -> tuple[IncidentState | None, list[Change], list[Drop]]:
    """The incident's next state, its changes and the drop reasons (``experience_stage``
    for a message that only schedules a check, ``duplicate`` for one already folded in)."""
    if only_schedules(state, sync):
        return state, [], [Drop.EXPERIENCE_STAGE]
    if state is not None and sync.uid in state.seen:
        return state, [], [Drop.DUPLICATE]
    change = apply_sync(None if state is None else state.document, sync)
    seen = (*(() if state is None else state.seen), sync.uid)[-SEEN_LIMIT:]
    return IncidentState(change.document, seen), [change], []
