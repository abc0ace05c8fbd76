"""The alert flow's batch step (operators/alert_access.py) writes what main's per-record steps
wrote, byte for byte.

Main (commit 33cd407, plus the guard and the time window that main has since) ran one Bytewax
step per stage per record: clean (decode, ``clean_alert``, time window), shard, expiry, route
and build writes, then the push-once script. The reference below composes those steps with
main's cleaning frozen in ``tests/main_33cd407.py`` and main's script; the flow's
:class:`AlertAccess` and today's script must give the same rejections, the same writes and
leave the same bytes in Redis.
"""

from __future__ import annotations

import time
import uuid

import orjson
import pytest

from alarmflow.config import load_settings
from alarmflow.samples import sample_messages
from flows.common import load_strategies
from flows.guard import rejection
from operators.alert import is_expired
from operators.alert_access import AlertAccess
from operators.bounds import decode_object
from operators.rejects import Rejection, SourceRecord
from operators.routing import AlertRouter
from state.idempotent import OncePusher, Push
from state.keys import Backend
from tests import main_33cd407
from tests.state.test_idempotent import same_state

NOW = float(int(time.time()))
ODD = [
    b"",
    b"{\"a\": " + b"[" * 40 + b"]" * 40 + b"}",
    orjson.dumps({"event_id": "ms", "plugin_id": "p", "alert_name": "a", "bk_biz_id": 2,
                  "time": int(NOW) * 1000}),
    orjson.dumps({"event_id": "inf", "plugin_id": "p", "alert_name": "CPU usage high",
                  "bk_biz_id": 2, "time": NOW, "severity": 1e308 * 10}),
]  # fmt: skip


def main_steps(
    settings, router, shard, record: SourceRecord, now: float
) -> Push | Rejection | None:
    """Main's per-record steps, each guarded as main's flow guards them."""
    try:
        event = main_33cd407.clean_alert(decode_object(record, settings.max_message_bytes), now)
        settings.time_window().check(event["time"], now, "time")
    except Exception as exc:
        return rejection("clean", exc, record)
    if shard is not None and not shard.owns(event["bk_biz_id"]):
        return None
    try:
        if is_expired(event, now):
            return None
    except Exception as exc:
        return rejection("expiry", exc, record)
    try:
        targets = router.route(event)
        if not targets:
            return None
        return main_33cd407.alert_push(settings.key_prefix, event, targets, settings.dedup_ttl)
    except Exception as exc:
        return rejection("route", exc, record)


@pytest.mark.parametrize("ring", [{}, {"ALARMFLOW_HASH_RING_NODES": "east,west",
                                       "ALARMFLOW_HASH_RING_NODE": "west"}])  # fmt: skip
def test_the_batch_step_writes_what_mains_steps_wrote(redis_client, service_client, ring):
    settings = load_settings({"ALARMFLOW_KEY_PREFIX": f"eq{uuid.uuid4().hex[:8]}.ee", **ring})
    router = AlertRouter(load_strategies(settings))
    messages = [*sample_messages(6000, int(NOW), seed=3), *ODD]
    records = [SourceRecord("alerts", i % 3, i, m, 1000 * i) for i, m in enumerate(messages)]

    shard = settings.shard()
    reference = [main_steps(settings, router, shard, r, NOW) for r in records]
    expected_pushes = [p for p in reference if isinstance(p, Push)]
    expected_rejections = [r for r in reference if isinstance(r, Rejection)]
    outcome = AlertAccess.from_settings(settings, load_strategies(settings))(records, NOW)

    assert outcome.rejected == expected_rejections
    assert {r.reason for r in outcome.rejected} >= {"not_json", "too_deep", "millisecond_time"}
    assert [push for push, _ in outcome.pushes] == expected_pushes
    assert len(expected_pushes) > 1000

    dbs = {Backend.QUEUE: 9, Backend.SERVICE: 10}
    clients = {"queue": redis_client, "service": service_client}
    main_pusher = main_33cd407.OncePusher(redis_client, dbs)
    pusher = OncePusher(redis_client, dbs)
    renamed = settings.key_prefix.replace("eq", "ne", 1)
    for start in range(0, len(expected_pushes), 500):
        batch = expected_pushes[start : start + 500]
        main_pusher.push(batch)
        pusher.push([rename(push, settings.key_prefix, renamed) for push in batch])
    assert same_state(clients, renamed, settings.key_prefix)


def rename(push: Push, prefix: str, renamed: str) -> Push:
    """The same push under another key prefix (keys only; alert payloads name no key)."""
    return Push(
        push.marker._replace(key=push.marker.key.replace(prefix, renamed, 1)),
        tuple(w._replace(key=w.key.replace(prefix, renamed, 1)) for w in push.writes),
    )
