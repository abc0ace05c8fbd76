"""Alert access: Kafka → (decode, clean, time window, shard, expiry, route, build writes) per
batch → Redis lists and signals; rejections → dead-letter topic.

``python -m bytewax.run flows.alert``; ``docs/alert.md`` describes it. The work of one batch of
messages is one Bytewax step (:class:`AlertAccess`), so Bytewax's per-item cost and the
metrics are paid once per batch. Every record is guarded inside it: a record any stage fails on
goes to the dead-letter topic with its reason (an unexpected error as ``internal_error`` naming
the stage) and the batch goes on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import bytewax.operators as op
from bytewax.dataflow import Dataflow

from alarmflow.config import Settings
from alarmflow.metrics import CLEANED, DROPPED, Stage
from flows.common import dead_letters, flow_from_env, load_strategies, write_once
from flows.guard import rejection
from flows.kafka_io import Input, kafka_batches
from flows.redis_sink import Routed
from operators.alert import clean_alert, is_expired
from operators.bounds import decode_object
from operators.rejects import Rejection
from operators.routing import AlertRouter
from state.writes import alert_push

NAME = "alert"


@dataclass
class Outcome:
    """What one batch gave: writes for Redis, rejections, and what was counted on the way."""

    routed: list[Routed] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    cleaned: int = 0
    other_shard: int = 0
    expired: int = 0
    unmatched: int = 0


class AlertAccess:
    """The alert flow's work on a batch, apart from Bytewax: each record decoded and cleaned,
    its time checked against the window, kept if this deployment's shard owns its business and
    it has not expired, routed, and turned into its Redis writes."""

    def __init__(self, settings: Settings, router: AlertRouter) -> None:
        self._router = router
        self._prefix = settings.key_prefix
        self._dedup_ttl = settings.dedup_ttl
        self._window = settings.time_window()
        self._max_bytes = settings.max_message_bytes
        shard = settings.shard()
        self._owns: Callable[[object], bool] | None = None if shard is None else shard.owns

    def __call__(self, inputs: Sequence[Input], now: float) -> Outcome:
        out = Outcome()
        for record in inputs:
            if isinstance(record, Rejection):
                out.rejected.append(record)
                continue
            stage = "clean"
            try:
                event = clean_alert(decode_object(record, self._max_bytes), now)
                self._window.check(event["time"], now, "time")
                out.cleaned += 1
                stage = "shard"
                if self._owns is not None and not self._owns(event["bk_biz_id"]):
                    out.other_shard += 1
                    continue
                stage = "expiry"
                if is_expired(event, now):
                    out.expired += 1
                    continue
                stage = "route"
                targets = self._router.route(event)
                if not targets:
                    out.unmatched += 1
                    continue
                push = alert_push(self._prefix, event, targets, self._dedup_ttl)
            except Exception as exc:
                out.rejected.append(rejection(stage, exc, record))
                continue
            out.routed.append(Routed(push, record.timestamp_ms))
        return out


def build_flow(settings: Settings) -> Dataflow:
    access = AlertAccess(settings, AlertRouter(load_strategies(settings)))
    stage = Stage(NAME, "access")
    cleaned = CLEANED.labels(NAME)
    expired, unmatched = DROPPED.labels(NAME, "expired"), DROPPED.labels(NAME, "unmatched")
    other_shard = None if settings.shard() is None else DROPPED.labels(NAME, "other_shard")

    def work(inputs: list[Input]) -> Outcome:
        with stage.batch(len(inputs)):
            out = access(inputs, time.time())
        cleaned.inc(out.cleaned)
        expired.inc(out.expired)
        unmatched.inc(out.unmatched)
        if other_shard is not None:
            other_shard.inc(out.other_shard)
        return out

    flow = Dataflow(NAME)
    batches = kafka_batches("kafka", flow, settings, settings.topics_for(NAME), NAME)
    outcomes = op.map("access", batches, work)
    write_once("redis", op.flat_map("routed", outcomes, lambda o: o.routed), settings, NAME, NAME)
    dead_letters("dlq", settings, NAME, op.flat_map("rejected", outcomes, lambda o: o.rejected))
    return flow


flow = flow_from_env(build_flow)
