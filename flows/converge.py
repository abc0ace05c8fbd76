"""Converge: Kafka actions → per-dimension converge state → decisions, audit, Redis.

``python -m bytewax.run flows.converge``. Each action instance (JSON with its alerts and
``converge_config``) is keyed by its converge dimension, so one worker owns a dimension and
bkmonitor's counter lock is not needed inside a deployment. The pure engine
(:mod:`operators.converge`) decides; this module only wires it to Bytewax:

- timers run on event time: before an action is decided, its dimension's timers due by the
  action's ``create_time`` fire; otherwise a timer fires when the key's clock (its latest
  event time, advanced by wall time while it is quiet) reaches it (``notify_at``);
- at end of input (``ALARMFLOW_TAIL=0``) every pending timer fires in due order (sleep
  retries, lock re-queues, collect summaries, business windows), so a replay ends decided;
- business summaries run in a second stateful step keyed by the business dimension, decided
  as the per-dimension summaries arrive (no timer).

Outputs: decision messages to ``ALARMFLOW_DECISION_TOPIC``, audit records to
``ALARMFLOW_AUDIT_TOPIC`` (both keyed by decision id, every delivery confirmed), and in Redis
the converge index and each alert's audit list, written once per decision id.
"""

from __future__ import annotations

import copy
import math
import time
from datetime import UTC, datetime

import bytewax.operators as op
import orjson
from bytewax.dataflow import Dataflow

from alarmflow.config import Settings
from alarmflow.connections import redis_client
from alarmflow.metrics import CLEANED, CONVERGE_DECISIONS, Stage
from flows.common import dead_letters, flow_from_env, parse_records, write_once
from flows.kafka_io import DeliveredSink, kafka_input
from flows.redis_sink import Routed
from operators.bounds import decode_object
from operators.converge import biz, engine
from operators.converge.audit import audit_record, decision_message
from operators.converge.context import Action, parse_action
from operators.converge.engine import Decision
from operators.converge.state import DimensionState
from operators.rejects import SourceRecord
from state.converge_lock import RedisLock
from state.converge_writes import decision_push

NAME = "converge"


class DimensionLogic(op.StatefulLogic):
    """One converge dimension: :func:`engine.decide` per action, timers by notify or EOF.

    Timers run on the dimension's clock: its latest event time, advanced by wall time while
    it is quiet. Live, that is the wall clock; when old actions are replayed (event time far
    behind), a timer waits for the dimension's later actions, for that much wall time, or for
    end of input, and never fires early between two of the dimension's actions.

    At end of input the lock is not asked again: timers are flushed as decided alone, since a
    lock held by another deployment would re-queue the action forever on a frozen clock.
    A dimension with nothing due is dropped once it has been quiet for the index TTL (or its
    longer window): no later action could match anything in it."""

    def __init__(self, state: DimensionState | None, lock: engine.Lock) -> None:
        self.state = state or DimensionState()
        self.lock = lock
        self.seen = time.time()

    def _keep(self, decisions: list[Decision]) -> tuple[list[Decision], bool]:
        return decisions, self.state.is_idle()

    def on_item(
        self, value: tuple[SourceRecord, tuple[Action, engine.Plan]]
    ) -> tuple[list[Decision], bool]:
        action, planned = value[1]
        self.seen = time.time()
        return self._keep(
            engine.decide(self.state, action, action.create_time, self.lock, planned)[1]
        )

    def on_notify(self) -> tuple[list[Decision], bool]:
        now = self.state.clock + (time.time() - self.seen)
        decisions = engine.fire_due(self.state, now, self.lock)[1]
        expires = self.state.expires_at()
        return decisions, self.state.is_idle() or (expires is not None and expires <= now)

    def on_eof(self) -> tuple[list[Decision], bool]:
        return self._keep(engine.fire_due(self.state, math.inf)[1])

    def notify_at(self) -> datetime | None:
        timers = self.state.timers
        due = min(timers).due if timers else self.state.expires_at()
        if due is None:
            return None
        return datetime.fromtimestamp(self.seen + (due - self.state.clock), UTC)

    def snapshot(self) -> DimensionState:
        return copy.deepcopy(self.state)


class BusinessLogic(op.StatefulLogic):
    """One business dimension: holds per-dimension summaries until its window is decided.
    Bytewax may end this step before the summaries the converge step flushes at its own end
    arrive, so after end of input each arriving summary may complete a window."""

    def __init__(self, state: biz.BizState | None) -> None:
        self.state = state or biz.BizState()
        self.ended = False

    def _decided(self, decisions: list[Decision]) -> tuple[list[Decision], bool]:
        decisions += biz.ready(self.state, self.ended)[1]
        return decisions, not self.state.windows

    def on_item(self, value: Decision) -> tuple[list[Decision], bool]:
        return self._decided(biz.on_decision(self.state, value)[1])

    def on_eof(self) -> tuple[list[Decision], bool]:
        self.ended = True
        return self._decided([])

    def snapshot(self) -> biz.BizState:
        return copy.deepcopy(self.state)


def _lock(settings: Settings) -> engine.Lock:
    """bkmonitor's counter lock when several deployments share the dimensions
    (``ALARMFLOW_CONVERGE_LOCK=1``); none otherwise (keyed state already serialises them)."""
    if not settings.converge_lock:
        return engine.NO_LOCK
    return RedisLock(redis_client(settings.redis_service_url, settings), settings.key_prefix)


def build_flow(settings: Settings) -> Dataflow:
    prefix = settings.key_prefix
    parsed_count = CLEANED.labels(NAME)

    def parse(record: SourceRecord, _now: float) -> tuple[Action, engine.Plan]:
        action = parse_action(decode_object(record, settings.max_message_bytes))
        parsed_count.inc()
        return action, engine.plan(action)

    def count(decision: Decision) -> Decision:
        CONVERGE_DECISIONS.labels(NAME, decision.function, decision.decision).inc()
        return decision

    flow = Dataflow(NAME)
    topics = settings.topics_for("action")
    records, consumer_errors = kafka_input("kafka", flow, settings, topics, NAME)
    parsed, rejected = parse_records("parse", records, Stage(NAME, "parse").per_item(parse))
    keyed = op.key_on("by_dimension", parsed, lambda item: item[1][1].dimension)
    lock = _lock(settings)
    converged = op.stateful("converge", keyed, lambda resumed: DimensionLogic(resumed, lock))
    decided = op.map("decided", converged, lambda kv: kv[1])
    split = op.branch("has_biz", decided, lambda d: bool(d.biz))
    by_biz = op.key_on("by_biz", split.trues, lambda d: d.biz)
    summarised = op.map("business", op.stateful("biz", by_biz, BusinessLogic), lambda kv: kv[1])
    decisions = op.map("count", op.merge("decisions", split.falses, summarised), count)

    def message(decision: Decision) -> tuple[str, bytes]:
        return decision.id, orjson.dumps(decision_message(decision))

    def audit(decision: Decision) -> tuple[str, bytes]:
        return decision.id, orjson.dumps(audit_record(decision))

    def routed(decision: Decision) -> Routed:
        return Routed(decision_push(prefix, decision), int(decision.time * 1000))

    op.output(
        "decisions_out",
        op.map("message", decisions, message),
        DeliveredSink(settings, settings.decision_topic, NAME, "decisions"),
    )
    op.output(
        "audit_out",
        op.map("audit", decisions, audit),
        DeliveredSink(settings, settings.audit_topic, NAME, "audit"),
    )
    write_once("redis", op.map("routed", decisions, routed), settings, NAME, "converge")
    dead_letters("dlq", settings, NAME, rejected, consumer_errors)
    return flow


flow = flow_from_env(build_flow)
