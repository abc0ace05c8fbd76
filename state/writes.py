"""What each access flow writes to Redis for one record, as :class:`~state.idempotent.Push`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from operators.incident import Change
from operators.routing import Target
from state.idempotent import Push, PushPolicy
from state.keys import (
    ALERT_DEDUP_KEY,
    ALERT_LIST_KEY,
    DATA_SIGNAL_KEY,
    INCIDENT_ALERTS_KEY,
    INCIDENT_DEDUP_KEY,
    INCIDENT_DOC_KEY,
    INCIDENT_HISTORY_KEY,
    INCIDENT_SIGNAL_KEY,
    KeyDef,
)


def _policy(prefix: str, signal: KeyDef, data: KeyDef, dedup_ttl: int) -> PushPolicy:
    """Signals onto ``signal``, data kept for ``data``'s registered TTL, markers ``dedup_ttl``."""
    return PushPolicy(signal.key(prefix), dedup_ttl, data.ttl, signal.ttl)


def alert_policy(prefix: str, dedup_ttl: int) -> PushPolicy:
    return _policy(prefix, DATA_SIGNAL_KEY, ALERT_LIST_KEY, dedup_ttl)


def alert_push(prefix: str, event: Mapping[str, Any], targets: Iterable[Target]) -> Push:
    """The cleaned alert onto each target's list, then each touched strategy id as a signal."""
    targets = tuple(targets)
    payload = orjson.dumps(event)
    return Push(
        marker=ALERT_DEDUP_KEY.key(prefix, event_uid=event["id"]),
        lists=tuple(
            (ALERT_LIST_KEY.key(prefix, strategy_id=t.strategy_id, item_id=t.item_id), payload)
            for t in targets
        ),
        signals=tuple(dict.fromkeys(str(t.strategy_id) for t in targets)),
    )


def incident_policy(prefix: str, dedup_ttl: int) -> PushPolicy:
    return _policy(prefix, INCIDENT_SIGNAL_KEY, INCIDENT_DOC_KEY, dedup_ttl)


def incident_push(prefix: str, sync_uid: str, change: Change) -> Push:
    """The document, its status-history entry (if the status changed) and its alert links,
    then the incident id as a signal; once per sync message."""
    incident = change.incident_id
    history = (
        ()
        if change.history is None
        else (
            (INCIDENT_HISTORY_KEY.key(prefix, incident_id=incident), orjson.dumps(change.history)),
        )
    )
    alerts_key = INCIDENT_ALERTS_KEY.key(prefix, incident_id=incident)
    return Push(
        marker=INCIDENT_DEDUP_KEY.key(prefix, sync_uid=sync_uid),
        lists=history,
        signals=(incident,),
        strings=(
            (INCIDENT_DOC_KEY.key(prefix, incident_id=incident), orjson.dumps(change.document)),
        ),
        members=tuple((alerts_key, alert) for alert in change.alerts),
    )
