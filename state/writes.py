"""What each access flow writes to Redis for one record, as :class:`~state.idempotent.Push`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from operators import _native
from operators.incident import Change
from operators.json_bytes import json_bytes
from operators.routing import Target
from state.idempotent import Op, Push, Write, write
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


class AlertWrites:
    """The writes of one cleaned alert: its JSON onto each target's list, then each touched
    strategy id as a signal; once per alert id within ``dedup_ttl``. The keys of each target
    are made once and remembered (a flow has a few hundred targets at most)."""

    def __init__(self, prefix: str, dedup_ttl: int) -> None:
        self._prefix = prefix
        self._marker_head = ALERT_DEDUP_KEY.head(prefix, "event_uid")
        self._marker = Write(Op.MARK, "", b"", dedup_ttl, "", ALERT_DEDUP_KEY.backend)
        self._targets: dict[tuple[Target, ...], tuple[tuple[Write, ...], tuple[Write, ...]]] = {}

    def _shapes(self, targets: tuple[Target, ...]) -> tuple[tuple[Write, ...], tuple[Write, ...]]:
        """The list writes (their values still empty) and the signals of ``targets``, made and
        remembered."""
        prefix = self._prefix
        lists = tuple(write(Op.LPUSH, ALERT_LIST_KEY, prefix, at=t.fields()) for t in targets)
        signals = tuple(
            write(Op.SIGNAL, DATA_SIGNAL_KEY, prefix, sid)
            for sid in dict.fromkeys(str(t.strategy_id) for t in targets)
        )
        shapes = self._targets[targets] = (lists, signals)
        return shapes

    def __call__(self, event: Mapping[str, Any], targets: tuple[Target, ...]) -> Push:
        """``Push(marker with its key, (*each list write with the payload, *signals))``, built
        in C (``operators/_native.c`` ``stamp_push``): a third of the Python's time."""
        lists, signals = self._targets.get(targets) or self._shapes(targets)
        key = self._marker_head + event["id"]
        return _native.stamp_push(self._marker, key, json_bytes(event), lists, signals, Push)


def incident_push(prefix: str, sync_uid: str, change: Change, dedup_ttl: int) -> Push:
    """The incident's history records (oldest first), its document and its alert links, then
    the incident id as a signal; once per sync message within ``dedup_ttl``."""
    at = {"incident_id": change.incident_id}
    return Push(
        write(Op.MARK, INCIDENT_DEDUP_KEY, prefix, at={"sync_uid": sync_uid}, ttl=dedup_ttl),
        (
            *(
                write(Op.LPUSH, INCIDENT_HISTORY_KEY, prefix, json_bytes(record), at=at)
                for record in change.history
            ),
            write(Op.SET, INCIDENT_DOC_KEY, prefix, json_bytes(change.document), at=at),
            *(write(Op.SADD, INCIDENT_ALERTS_KEY, prefix, alert, at=at) for alert in change.alerts),
            write(Op.SIGNAL, INCIDENT_SIGNAL_KEY, prefix, change.incident_id),
        ),
    )
