"""Converge: Kafka actions → per-dimension converge state → decisions, audit, Redis.

``python -m bytewax.run flows.converge``::

    kafka ─ plan ─ by_dimension ─ converge ─ gather ─┬─ no_biz ──────────────┬─ outputs ─ decisions,
             │                                       └─ by_biz ─ biz ─ gather ┤   audit, Redis,
             └─ plan_rejected ───────────────────────────────────────────────┘   DLQ

The work goes a batch at a time (Bytewax's per-item cost and the metrics are paid once per
batch): each Kafka batch is decoded, parsed and planned in one step
(:class:`operators.converge.intake.Planner`), each action kept only if this deployment owns
its business on the hash ring and keyed by its converge dimension, so one worker owns a
dimension; each key gets the actions of a batch in one call; each batch of decisions becomes
its messages and Redis writes in one step (:func:`outputs`), written by a thread of the
worker's own while the worker goes on (:func:`build_flow`). The state objects of
:mod:`operators.converge` decide; the logic classes here only give them a clock and Bytewax's
keep-or-discard answer:

- timers run on event time: an action's own time fires the timers due by it; a quiet key's
  timers fire when its clock (the event time of its last action plus the wall time since)
  reaches them; at end of input (``ALARMFLOW_TAIL=0``) every pending timer fires in due order;
- a dimension is discarded once idle, or once its clock (or, in a replay, the worker's newest
  action time less ``INDEX_TTL_S`` of lag) passed its last action by the longer of the index
  TTL and the window: no later action could match anything in it any more;
- a record a step fails on goes to the DLQ and the key keeps its state from before it.

Outputs: decision messages to ``ALARMFLOW_DECISION_TOPIC``, audit records to
``ALARMFLOW_AUDIT_TOPIC`` (both keyed by decision id), and in Redis the converge index, the
notice-collect pool and each alert's audit list, written once per decision id.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TypeVar

import bytewax.operators as op
import orjson
from bytewax.dataflow import Dataflow, Stream, operator
from bytewax.outputs import StatelessSinkPartition

from alarmflow.config import ConfigError, Settings, mask_url
from alarmflow.connections import redis_client
from alarmflow.metrics import CLEANED, CONVERGE_DECISIONS, DROPPED, Stage
from flows.common import dead_letters, flow_from_env, load_strategies, push_sink
from flows.guard import rejection
from flows.kafka_io import (
    DeliveredPartition,
    DeliveredSink,
    Input,
    LocalParts,
    Message,
    check_topics,
    kafka_batches,
    kafka_parts,
)
from flows.redis_sink import Outage, Routed, WriteBehindSink
from operators.converge.audit import audit_record, decision_message
from operators.converge.biz import Business
from operators.converge.engine import INDEX_TTL_S, NO_LOCK, Dimension, Lock, Runtime
from operators.converge.intake import Intake, Planner
from operators.converge.records import Decision, Planned
from operators.converge.shields import ShieldError, ShieldTable, shield_table
from operators.drops import Drop
from operators.json_bytes import json_bytes
from operators.rejects import Rejection, SourceRecord
from state.converge_lock import RedisLock
from state.converge_writes import DecisionWrites

NAME = "converge"


class PatientLock:
    """bkmonitor's counter lock whose Redis calls wait out an outage as the sink's writes do
    (``ALARMFLOW_REDIS_OUTAGE_S``). An INCR whose reply an outage lost may count twice; the
    counter's 60 s TTL ends that, as in bkmonitor."""

    def __init__(self, lock: Lock, outage: Outage) -> None:
        self._lock = lock
        self._outage = outage

    def acquire(self, dimension: str, parallel: int) -> bool:
        return self._outage.run(lambda: self._lock.acquire(dimension, parallel))

    def release(self, dimension: str) -> None:
        self._outage.run(lambda: self._lock.release(dimension))


MAX_WAIT = timedelta(days=3650)
"""Bound on a timer's wall-clock wait: event times are bounded, this keeps datetimes valid."""

Out = Decision | Rejection
Clock = Callable[[], float]
V = TypeVar("V")
W = TypeVar("W")
S = TypeVar("S")
EXPIRY_CHECK = timedelta(seconds=60)
"""How often (wall time) an idle key checks the worker's watermark for expiry."""


class Watermark:
    """The newest action time this worker has seen (shared by its keys). A replay moves event
    time faster than wall time; a key then expires once the watermark has passed its last
    action by the quiet time plus ``INDEX_TTL_S`` of allowed lag between partitions."""

    def __init__(self) -> None:
        self.time = 0.0

    def see(self, t: float) -> None:
        self.time = max(self.time, t)


class DimensionLogic(op.StatefulBatchLogic):
    """One converge dimension: :meth:`Dimension.push` per action (the actions of a batch in
    one call), timers on its clock.

    The clock is the event time of the key's last action plus the wall time since: live, that
    is the wall clock; when old actions are replayed, a timer waits for the key's later
    actions, for that much wall time, or for end of input."""

    def __init__(
        self,
        resumed: Dimension | None,
        runtime: Runtime,
        wall: Callable[[], float] = time.time,
        watermark: Watermark | None = None,
    ) -> None:
        self.dimension = resumed or Dimension()
        self.runtime = runtime
        self.wall = wall
        self.watermark = watermark or Watermark()
        self.anchor = (self.dimension.clock, wall())

    def now(self) -> float:
        """The key's clock: its last action's event time plus the wall time since."""
        clock, wall = self.anchor
        return max(self.dimension.clock, clock + self.wall() - wall)

    def _keep(self, out: list[Out], expired: bool = False) -> tuple[list[Out], bool]:
        return out, self.DISCARD if expired or self.dimension.is_idle() else self.RETAIN

    def on_batch(self, values: list[Planned]) -> tuple[list[Out], bool]:
        """Each action in turn; a dimension left idle by one starts afresh for the next, as a
        discarded key would. The batch is decided on a copy of the state, made once per batch
        (a busy dimension's state grows with its actions): should an action fail, the key goes
        back to the state before the batch, which is decided again action by action
        (:meth:`_each_alone`). Deciding on the copy rather than keeping it aside leaves the key
        with dicts a copy has just compacted, which the next batch's copy clones whole
        (:meth:`Dimension.copy`)."""
        savepoint = self.dimension
        self.dimension = savepoint.copy()
        out: list[Out] = []
        for value in values:
            try:
                out += self.dimension.push(value.action, value.plan, self.runtime)
            except Exception:
                self.dimension = savepoint
                return self._keep(self._each_alone(values))
            self._pushed(value)
        return self._keep(out)

    def _each_alone(self, values: list[Planned]) -> list[Out]:
        """Each action from a copy of the state before it: one that fails is rejected and the
        key keeps its state from before it. (With the counter lock, deciding an action again
        asks the lock again, as bkmonitor's retry of an action does.)"""
        out: list[Out] = []
        for value in values:
            before = self.dimension
            self.dimension = before.copy()
            try:
                out += self.dimension.push(value.action, value.plan, self.runtime)
            except Exception as exc:
                self.dimension = before
                out.append(rejection("converge", exc, value.source))
            self._pushed(value)
        return out

    def _pushed(self, value: Planned) -> None:
        """After an action: the key's clock anchored, the watermark moved, an idle dimension
        started afresh."""
        self.anchor = (self.dimension.clock, self.wall())
        self.watermark.see(value.action.create_time)
        if self.dimension.is_idle():
            self.dimension = Dimension()

    def _fire(self, now: float, fire: Callable[[], list[Decision]]) -> list[Out]:
        """What ``fire`` decides, the key's timers due by ``now``. Should one fail, the key goes
        back to its state before, and the timers due by ``now`` (with the actions they would
        retry) are dropped into one dead-letter record that names them."""
        before = self.dimension.copy()
        try:
            return list(fire())
        except Exception as exc:
            self.dimension = before
            dropped = self.dimension.drop_due(now)
            return [rejection("converge_timer", exc, TIMER_SOURCE._replace(value=dropped))]

    def on_notify(self) -> tuple[list[Out], bool]:
        now = self.now()
        out = self._fire(now, lambda: self.dimension.advance(now, self.runtime))
        expires = self.dimension.expires_at()
        horizon = max(now, self.watermark.time - INDEX_TTL_S)
        return self._keep(out, expires is not None and expires <= horizon)

    def on_eof(self) -> tuple[list[Out], bool]:
        shields = self.runtime.shields
        return self._keep(self._fire(math.inf, lambda: self.dimension.flush(shields)))

    def notify_at(self) -> datetime | None:
        """The next timer on the key's clock; when none, its expiry, checked against the
        watermark at least every ``EXPIRY_CHECK``."""
        due = self.dimension.next_due()
        expires = self.dimension.expires_at()
        if due is None and expires is None:
            return None
        clock, wall = self.anchor
        at = datetime.fromtimestamp(wall, UTC)
        at += min(timedelta(seconds=max((due or expires or 0.0) - clock, 0.0)), MAX_WAIT)
        if due is None:
            at = min(at, datetime.fromtimestamp(self.wall(), UTC) + EXPIRY_CHECK)
        return at

    def snapshot(self) -> Dimension:
        return self.dimension.copy()


TIMER_SOURCE = SourceRecord("converge.timers", -1, -1, b"")
"""Timers and the decisions they make come from no message: the DLQ record names them."""


def dimension_logic(rt: Runtime) -> Callable[[Dimension | None], DimensionLogic]:
    """The builder of a worker's dimension keys: one watermark shared by all of them."""
    watermark = Watermark()

    def build(resumed: Dimension | None) -> DimensionLogic:
        return DimensionLogic(resumed, rt, watermark=watermark)

    return build


def timer_source(decision: Decision) -> SourceRecord:
    return TIMER_SOURCE._replace(value=decision.id.encode())


class BusinessLogic(op.StatefulBatchLogic):
    """One business dimension: :meth:`Business.take` per decision (a batch's in one call),
    :meth:`Business.end` at end of input (summaries flushed after it still complete their
    windows)."""

    def __init__(self, resumed: Business | None) -> None:
        self.business = resumed or Business()

    def _keep(self, out: list[Out]) -> tuple[list[Out], bool]:
        return out, self.RETAIN if self.business.windows else self.DISCARD

    def on_batch(self, values: list[Decision]) -> tuple[list[Out], bool]:
        """Each decision in turn; a business left without windows by one starts afresh for
        the next, as a discarded key would."""
        out: list[Out] = []
        for value in values:
            before = self.business.savepoint(value)
            try:
                out += self.business.take(value)
            except Exception as exc:
                self.business = before
                out.append(rejection("biz", exc, timer_source(value)))
            if not self.business.windows:
                self.business = Business()
        return self._keep(out)

    def on_eof(self) -> tuple[list[Out], bool]:
        """Every window with all its summaries decided; should that fail, the business keeps
        its windows and one dead-letter record names the summaries they held."""
        before = self.business.copy()
        try:
            out: list[Out] = list(self.business.end())
        except Exception as exc:
            self.business = before
            held = ",".join(d.id for w in before.windows.values() for d in w.held).encode()
            out = [rejection("biz", exc, TIMER_SOURCE._replace(value=held))]
        return self._keep(out)

    def snapshot(self) -> Business:
        return self.business.copy()


def runtime(settings: Settings) -> Runtime:
    """bkmonitor's counter lock when several deployments share the dimensions
    (``ALARMFLOW_CONVERGE_LOCK=1``, none otherwise: keyed state already serialises them), and
    the shield table (``ALARMFLOW_SHIELDS``) with the strategies' configs."""
    lock = NO_LOCK
    if settings.converge_lock:
        client = redis_client(settings.redis_service_url, settings)
        outage = Outage(NAME, mask_url(settings.redis_service_url), settings.redis_outage_s)
        lock = PatientLock(RedisLock(client, settings.key_prefix), outage)
    strategies = {s.id: s.raw for s in load_strategies(settings)}
    if not settings.shields:
        return Runtime(lock, ShieldTable(strategies=strategies))
    try:
        raw = orjson.loads(Path(settings.shields).read_bytes())
        return Runtime(lock, shield_table(raw, strategies))
    except (orjson.JSONDecodeError, ShieldError) as exc:
        raise ConfigError(f"ALARMFLOW_SHIELDS={settings.shields}: {exc}") from None


@dataclass
class Outcome:
    """What a step of the pipeline made of a batch: decisions and rejections."""

    decisions: list[Decision] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)


def gather(items: list[tuple[str, Out]]) -> list[Outcome]:
    """A stateful step's outputs of one batch (over all its keys), as one :class:`Outcome`."""
    outcome = Outcome()
    for _, item in items:
        if isinstance(item, Decision):
            outcome.decisions.append(item)
        else:
            outcome.rejected.append(item)
    return [outcome]


@dataclass
class Outputs:
    """The messages and Redis writes of a batch of decisions, and the batch's rejections."""

    decisions: list[Message]
    audit: list[Message]
    routed: list[Routed]
    rejected: list[Rejection]


def outputs(prefix: str) -> Callable[[Outcome], Outputs]:
    """A batch of decisions' messages and writes (the audit record encoded once for its topic
    and Redis), counted per batch. A decision they cannot be made of goes to the DLQ, named
    by its id, and the batch goes on."""
    writes = DecisionWrites(prefix)

    def make(outcome: Outcome) -> Outputs:
        made = Outputs([], [], [], list(outcome.rejected))
        counts: Counter[tuple[str, str]] = Counter()
        for decision in outcome.decisions:
            counts[decision.function, decision.decision] += 1
            try:
                record = json_bytes(audit_record(decision))
                message = json_bytes(decision_message(decision))
                push = writes(decision, record)
            except Exception as exc:
                made.rejected.append(rejection("outputs", exc, timer_source(decision)))
                continue
            made.decisions.append((decision.id, message))
            made.audit.append((decision.id, record))
            made.routed.append(Routed(push, decision.time_ms))
        for (function, verdict), count in counts.items():
            CONVERGE_DECISIONS.labels(NAME, function, verdict).inc(count)
        return made

    return make


@operator
def keyed_state(
    step_id: str,
    up: op.KeyedStream[V],
    builder: Callable[[S | None], op.StatefulBatchLogic[V, W, S]],
) -> op.KeyedStream[W]:
    """``stateful_batch`` under the step id ``op.stateful`` gives its state
    (``{step_id}.stateful_batch``): a recovery store written by the flow before it took its
    keys' items a batch at a time resumes their state."""
    return op.stateful_batch("stateful_batch", up, builder)


def converge(
    batches: Stream[list[Input]], settings: Settings, rt: Runtime, clock: Clock = time.time
) -> Stream[Outputs]:
    """The pipeline from batches of input records to the outputs of their decisions (one
    :class:`Outputs` per batch, its rejections included)."""
    shard = settings.shard()
    planner = Planner(
        settings.time_window(),
        settings.max_message_bytes,
        None if shard is None else shard.owns,
    )
    stage = Stage(NAME, "parse")
    parsed_count = CLEANED.labels(NAME)
    other_shard = DROPPED.labels(NAME, Drop.OTHER_SHARD) if shard is not None else None

    def plan_batch(inputs: list[Input]) -> Intake:
        with stage.batch(len(inputs)):
            intake = planner(inputs, clock())
        parsed_count.inc(intake.parsed)
        if other_shard is not None:
            other_shard.inc(intake.other_shard)
        return intake

    planned = op.map("plan", batches, plan_batch)
    keyed: op.KeyedStream[Planned] = op.flat_map("by_dimension", planned, lambda i: i.keyed)
    converged = keyed_state("converge", keyed, dimension_logic(rt))
    gathered = op.flat_map_batch("gather", converged, gather)
    by_biz: op.KeyedStream[Decision] = op.flat_map(
        "by_biz", gathered, lambda o: [(d.biz, d) for d in o.decisions if d.biz]
    )
    summarised = op.flat_map_batch("biz_gather", keyed_state("biz", by_biz, BusinessLogic), gather)
    no_biz = op.map(
        "no_biz",
        gathered,
        lambda o: Outcome([d for d in o.decisions if not d.biz], o.rejected),
    )
    rejected = op.map("plan_rejected", planned, lambda i: Outcome(rejected=i.rejected))
    decided = op.merge("decided", rejected, no_biz, summarised)
    return op.map("outputs", decided, outputs(settings.key_prefix))


class _OutputsPartition(StatelessSinkPartition[Outputs]):
    def __init__(
        self, kafka: DeliveredPartition, redis: StatelessSinkPartition, audit_topic: str
    ) -> None:
        self._kafka = kafka
        self._redis = redis
        self._audit_topic = audit_topic

    def write_batch(self, items: list[Outputs]) -> None:
        self._kafka.send([message for made in items for message in made.decisions])
        self._kafka.send([message for made in items for message in made.audit], self._audit_topic)
        self._redis.write_batch([made.routed for made in items])
        self._kafka.wait()

    def close(self) -> None:
        self._kafka.close()
        self._redis.close()


class OutputsWrites:
    """The writes of batches of outputs: the decision and audit messages (one producer for
    both topics) and the Redis writes, made while the broker acknowledges the messages; a
    batch is written once Kafka and Redis both acknowledged it."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._kafka = DeliveredSink(settings, settings.decision_topic, NAME, "kafka")
        self._redis = push_sink(settings, NAME, "converge", batched=True)

    def partition(self, step_id: str) -> _OutputsPartition:
        audit_topic = self._settings.audit_topic
        check_topics(self._settings, [audit_topic])
        return _OutputsPartition(
            self._kafka.partition(), self._redis.partition(f"{step_id}_redis"), audit_topic
        )


def records(outputs: list[Outputs]) -> int:
    """What a list of outputs counts for in a writer's queue: each batch and its decisions."""
    return sum(1 + len(made.routed) for made in outputs)


def build_flow(settings: Settings) -> Dataflow:
    """The pipeline, its outputs written behind the worker
    (:class:`~flows.redis_sink.WriteBehindSink`, a snapshot waits for them) by the worker that
    made them: each batch of outputs is keyed by a Kafka partition its worker reads."""
    flow = Dataflow(NAME)
    topics = settings.topics_for("action")
    local = LocalParts()
    batches = kafka_batches("kafka", flow, settings, topics, NAME, local)
    made = converge(batches, settings, runtime(settings))
    parts = partial(kafka_parts, settings, topics)
    sink = WriteBehindSink(OutputsWrites(settings), parts, records)
    op.output("out", op.map("out_keyed", made, lambda m: (local.part(), [m])), sink)
    dead_letters("dlq", settings, NAME, op.flat_map("rejections", made, lambda m: m.rejected))
    return flow


flow = flow_from_env(build_flow)
