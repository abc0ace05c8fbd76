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
its messages and Redis writes in one step (:func:`~flows.converge_outputs.outputs`), written
by a thread of the worker's own while the worker goes on (:func:`build_flow`). The state objects
of :mod:`operators.converge` decide, behind the keyed logic of :mod:`flows.converge_logic`
(timers on event time, keys discarded once nothing can refer to them); a record a step fails
on goes to the DLQ and the key keeps its state from before it.

Outputs: decision messages to ``ALARMFLOW_DECISION_TOPIC``, audit records to
``ALARMFLOW_AUDIT_TOPIC`` (both keyed by decision id), and in Redis the converge index, the
notice-collect pool and each alert's audit list, written once per decision id.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import bytewax.operators as op
import orjson
from bytewax.dataflow import Dataflow, Stream

from alarmflow.config import ConfigError, Settings, mask_url
from alarmflow.connections import redis_client
from alarmflow.metrics import CLEANED, DROPPED, Stage
from flows.common import dead_letters, flow_from_env, load_strategies
from flows.converge_logic import BusinessLogic, dimension_logic, keyed_state
from flows.converge_outputs import Outcome, Outputs, OutputsWrites, gather, outputs, size
from flows.kafka_io import Input, LocalParts, kafka_batches, kafka_parts, largest_value
from flows.outage import Outage
from flows.write_behind import WriteBehindSink
from operators.converge.engine import NO_LOCK, Lock, Runtime
from operators.converge.intake import Intake, Planner
from operators.converge.records import Decision, Planned
from operators.converge.shields import ShieldError, ShieldTable, shield_table
from operators.drops import Drop
from state.converge_lock import RedisLock

NAME = "converge"
Clock = Callable[[], float]


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
    except (OSError, orjson.JSONDecodeError, ShieldError) as exc:
        raise ConfigError(f"ALARMFLOW_SHIELDS={settings.shields}: {exc}") from None


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
    made = outputs(settings.key_prefix, NAME, largest_value(settings))
    return op.map("outputs", decided, made)


def build_flow(settings: Settings) -> Dataflow:
    """The pipeline, its outputs written behind the worker
    (:class:`~flows.write_behind.WriteBehindSink`, a snapshot waits for them) by the worker that
    made them: each batch of outputs is keyed by a Kafka partition its worker reads."""
    flow = Dataflow(NAME)
    topics = settings.topics_for("action")
    local = LocalParts()
    batches = kafka_batches("kafka", flow, settings, topics, NAME, local)
    made = converge(batches, settings, runtime(settings))
    parts = partial(kafka_parts, settings, topics)
    sink = WriteBehindSink(OutputsWrites(settings, NAME), parts, size)
    op.output("out", op.map("out_keyed", made, lambda m: (local.part(), [m])), sink)
    dead_letters("dlq", settings, NAME, op.flat_map("rejections", made, lambda m: m.rejected))
    return flow


flow = flow_from_env(build_flow)
