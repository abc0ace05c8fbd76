"""Converge: Kafka actions → per-dimension converge state → decisions, audit, Redis.

``python -m bytewax.run flows.converge``::

    kafka ─ parse ─ shard ─ by_dimension ─ converge ─┬─────────────── count ─ decisions, audit,
               │                              │      └─ by_biz ─ biz ─┘        Redis
               └──────────── DLQ ◄────────────┴───────────────────────┘

Each action (JSON with its alerts and ``converge_config``) is planned once, kept only if this
deployment owns its business on the hash ring, and keyed by its converge dimension, so one
worker owns a dimension. The state objects of :mod:`operators.converge` decide; the logic
classes here only give them a clock and Bytewax's keep-or-discard answer:

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

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import bytewax.operators as op
import orjson
from bytewax.dataflow import Dataflow, Stream

from alarmflow.config import ConfigError, Settings, mask_url
from alarmflow.connections import redis_client
from alarmflow.metrics import CLEANED, CONVERGE_DECISIONS, Stage
from flows.common import dead_letters, flow_from_env, load_strategies, shard_by_business, write_once
from flows.guard import Split, guarded_map, rejection
from flows.kafka_io import DeliveredSink, kafka_input
from flows.redis_sink import Outage, Routed
from operators.bounds import decode_object
from operators.converge.audit import audit_record, decision_message
from operators.converge.biz import Business
from operators.converge.context import parse_action
from operators.converge.engine import INDEX_TTL_S, NO_LOCK, Dimension, Lock, Runtime
from operators.converge.plan import plan
from operators.converge.records import Decision, Planned
from operators.converge.shields import ShieldError, ShieldTable, shield_table
from operators.rejects import Rejection, SourceRecord
from state.converge_lock import RedisLock
from state.converge_writes import decision_push

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


class DimensionLogic(op.StatefulLogic):
    """One converge dimension: :meth:`Dimension.push` per action, timers on its clock.

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

    def on_item(self, value: Planned) -> tuple[list[Out], bool]:
        before = self.dimension.copy()
        try:
            out: list[Out] = list(self.dimension.push(value.action, value.plan, self.runtime))
        except Exception as exc:
            self.dimension = before
            out = [rejection("converge", exc, value.source)]
        self.anchor = (self.dimension.clock, self.wall())
        self.watermark.see(value.action.create_time)
        return self._keep(out)

    def on_notify(self) -> tuple[list[Out], bool]:
        now = self.now()
        before = self.dimension.copy()
        try:
            out: list[Out] = list(self.dimension.advance(now, self.runtime))
        except Exception as exc:
            self.dimension = before
            dropped = self.dimension.drop_due(now)
            out = [rejection("converge_timer", exc, TIMER_SOURCE._replace(value=dropped))]
        expires = self.dimension.expires_at()
        horizon = max(now, self.watermark.time - INDEX_TTL_S)
        return self._keep(out, expires is not None and expires <= horizon)

    def on_eof(self) -> tuple[list[Out], bool]:
        return self._keep(list(self.dimension.flush(self.runtime.shields)))

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


class BusinessLogic(op.StatefulLogic):
    """One business dimension: :meth:`Business.take` per decision, :meth:`Business.end` at end
    of input (summaries flushed after it still complete their windows)."""

    def __init__(self, resumed: Business | None) -> None:
        self.business = resumed or Business()

    def _keep(self, out: list[Out]) -> tuple[list[Out], bool]:
        return out, self.RETAIN if self.business.windows else self.DISCARD

    def on_item(self, value: Decision) -> tuple[list[Out], bool]:
        before = self.business.savepoint(value)
        try:
            out: list[Out] = list(self.business.take(value))
        except Exception as exc:
            self.business = before
            out = [rejection("biz", exc, timer_source(value))]
        return self._keep(out)

    def on_eof(self) -> tuple[list[Out], bool]:
        return self._keep(list(self.business.end()))

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


def converge(
    records: Stream[SourceRecord], settings: Settings, rt: Runtime
) -> tuple[Stream[Decision], tuple[Stream[Rejection], ...]]:
    """The pipeline from input records to counted decisions, and the records it rejected."""
    window = settings.time_window()
    parsed_count = CLEANED.labels(NAME)

    def parse(record: SourceRecord) -> Planned:
        data = decode_object(record, settings.max_message_bytes)
        action = parse_action(data, window, time.time())
        parsed_count.inc()
        return Planned(record, action, plan(action))

    def count(decision: Decision) -> Decision:
        CONVERGE_DECISIONS.labels(NAME, decision.function, decision.decision).inc()
        return decision

    parsed = guarded_map("parse", records, Stage(NAME, "parse").per_item(parse), lambda r: r)
    mine = shard_by_business("shard", parsed.oks, settings, lambda p: p.action.bk_biz_id, NAME)
    keyed = op.key_on("by_dimension", mine, lambda p: p.plan.key)
    converged = outcomes("converge", op.stateful("converge", keyed, dimension_logic(rt)))
    split = op.branch("has_biz", converged.oks, lambda d: bool(d.biz))
    by_biz = op.key_on("by_biz", split.trues, lambda d: d.biz)
    summarised = outcomes("biz", op.stateful("biz", by_biz, BusinessLogic))
    decisions = op.map("count", op.merge("decisions", split.falses, summarised.oks), count)
    return decisions, (parsed.errs, converged.errs, summarised.errs)


def build_flow(settings: Settings) -> Dataflow:
    flow = Dataflow(NAME)
    topics = settings.topics_for("action")
    records, consumer_errors = kafka_input("kafka", flow, settings, topics, NAME)
    decisions, errors = converge(records, settings, runtime(settings))
    prefix = settings.key_prefix
    op.output(
        "decisions_out",
        op.map("message", decisions, lambda d: (d.id, orjson.dumps(decision_message(d)))),
        DeliveredSink(settings, settings.decision_topic, NAME, "decisions"),
    )
    op.output(
        "audit_out",
        op.map("audit", decisions, lambda d: (d.id, orjson.dumps(audit_record(d)))),
        DeliveredSink(settings, settings.audit_topic, NAME, "audit"),
    )
    routed = op.map("routed", decisions, lambda d: Routed(decision_push(prefix, d), d.time_ms))
    write_once("redis", routed, settings, NAME, "converge")
    dead_letters("dlq", settings, NAME, *errors, consumer_errors)
    return flow


def outcomes(step_id: str, keyed: op.KeyedStream[Out]) -> Split[Decision]:
    """A stateful step's outputs, split into decisions and rejections."""
    values = op.map(f"{step_id}_values", keyed, lambda kv: kv[1])
    branch = op.branch(f"{step_id}_ok", values, lambda item: isinstance(item, Decision))
    return Split(branch.trues, branch.falses)  # type: ignore[arg-type]


flow = flow_from_env(build_flow)
