"""What each access flow writes to Redis for one record, as :class:`~state.idempotent.Push`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from operators.incident import Change
from operators.routing import Target
from state.idempotent import Op, Push, write
from state.keys import (
    ALERT_DEDUP_KEY,
    ALERT_LIST_KEY,
    DATA_SIGNAL_KEY,
    INCIDENT_ALERTS_KEY,
    INCIDENT_DEDUP_KEY,
    INCIDENT_DOC_KEY,
    INCIDENT_HISTORY_KEY,
    INCIDENT_SIGNAL_KEY,
)


def alert_push(
    prefix: str, event: Mapping[str, Any], targets: Iterable[Target], dedup_ttl: int
) -> Push:
    """The cleaned alert onto each target's list, then each touched strategy id as a signal;
    once per alert id within ``dedup_ttl``."""
    targets = tuple(targets)
    payload = orjson.dumps(event)
    lists = tuple(
        write(
            Op.LPUSH,
            ALERT_LIST_KEY,
            prefix,
            payload,
            at={"strategy_id": t.strategy_id, "item_id": t.item_id},
        )
        for t in targets
    )
    signals = tuple(
        write(Op.SIGNAL, DATA_SIGNAL_KEY, prefix, sid)
        for sid in dict.fromkeys(str(t.strategy_id) for t in targets)
    )
    marker = write(Op.MARK, ALERT_DEDUP_KEY, prefix, at={"event_uid": event["id"]}, ttl=dedup_ttl)
    return Push(marker, lists + signals)


def incident_push(prefix: str, sync_uid: str, change: Change, dedup_ttl: int) -> Push:
    """The incident's history records (oldest first), its document and its alert links, then
    the incident id as a signal; once per sync message within ``dedup_ttl``."""
    at = {"incident_id": change.incident_id}
    return Push(
        write(Op.MARK, INCIDENT_DEDUP_KEY, prefix, at={"sync_uid": sync_uid}, ttl=dedup_ttl),
        (
            *(
                write(Op.LPUSH, INCIDENT_HISTORY_KEY, prefix, orjson.dumps(record), at=at)
                for record in change.history
            ),
            write(Op.SET, INCIDENT_DOC_KEY, prefix, orjson.dumps(change.document), at=at),
            *(write(Op.SADD, INCIDENT_ALERTS_KEY, prefix, alert, at=at) for alert in change.alerts),
            write(Op.SIGNAL, INCIDENT_SIGNAL_KEY, prefix, change.incident_id),
        ),
    )
