"""Building blocks shared by every flow: settings at start, rejection splitting, DLQ wiring."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TypeVar

import bytewax.operators as op
import redis
from bytewax.dataflow import Dataflow, Stream

from alarmflow import logs
from alarmflow.config import ConfigError, Settings, exit_on_config_error, load_settings
from alarmflow.connections import (
    ConnectFailed,
    flow_topics,
    mask_secrets_in_logs,
    preflight,
    redis_client,
)
from alarmflow.heap import settle_heap
from alarmflow.metrics import DLQ_PRODUCED, DROPPED, Endpoint, make_targets_dir
from flows.guard import guarded_map
from flows.kafka_io import DeliveredSink, dead_letter, kafka_parts, part_name, without_raw
from flows.redis_sink import PushSink, Routed, routed_size
from flows.write_behind import WriteBehindSink
from operators.drops import Drop
from operators.hosts import HostError, HostIndex, load_host_file
from operators.rejects import Rejection, SourceRecord
from operators.strategy import Strategy, StrategyError, load_strategy_file
from operators.targets import DynamicGroupError
from state.strategy_cache import load_cached_strategies

X = TypeVar("X")


def flow_from_env(build: Callable[[Settings], Dataflow]) -> Dataflow:
    """The entry point of every flow module: settings from the environment, logging at
    ``ALARMFLOW_LOG_LEVEL`` with secrets masked, then (run by ``bytewax.run``) the metrics
    targets directory made and a check that Kafka and Redis accept the settings and that every
    topic the flow uses exists (the flow is the module of ``build``), then the flow. On bad
    config or a refused connection print one line per problem and exit 2; an unusable
    strategy, host or dynamic-group table is named by its setting
    (``ALARMFLOW_STRATEGIES=<path>: strategy 101: ...``). A flow run by ``bytewax.run`` then
    settles its heap; a process that only imports the module keeps its own collector settings."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        exit_on_config_error(exc)
    try:
        logs.configure(settings.log_level)
        mask_secrets_in_logs(settings)
        run_by_bytewax = _run_by_bytewax()
        if run_by_bytewax:
            make_targets_dir(metrics_endpoint(settings))
            preflight(settings, flow_topics(settings, build.__module__))
        flow = build(settings)
    except ConfigError as exc:
        exit_on_config_error(exc)
    except (StrategyError, HostError) as exc:
        exit_on_config_error(ConfigError(f"{table_setting(exc, settings)}: {exc}"))
    except ConnectFailed as exc:
        print(f"alarmflow: cannot start: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if run_by_bytewax:
        settle_heap()
    return flow


def table_setting(exc: StrategyError | HostError, settings: Settings) -> str:
    """``NAME=value`` of the setting that names the table ``exc`` is about: the dynamic groups,
    the hosts or the strategies."""
    if isinstance(exc, DynamicGroupError):
        return f"ALARMFLOW_DYNAMIC_GROUPS={settings.dynamic_groups}"
    if isinstance(exc, HostError):
        return f"ALARMFLOW_HOSTS={settings.hosts}"
    return f"ALARMFLOW_STRATEGIES={settings.strategies}"


def _run_by_bytewax() -> bool:
    """Whether this process is ``python -m bytewax.run`` (rather than, say, a test importing a
    flow module to reach its operators)."""
    main = sys.modules.get("__main__")
    return getattr(getattr(main, "__spec__", None), "name", None) == "bytewax.run"


def load_strategies(settings: Settings) -> tuple[Strategy, ...]:
    """From the strategies file, or from bkmonitor's strategy cache when it is ``redis``."""
    if settings.strategies == "redis":
        client = redis_client(settings.redis_cache_url, settings, socket_connect_timeout=3)
        try:
            return load_cached_strategies(client, settings.key_prefix)
        except redis.RedisError as exc:
            raise StrategyError(str(exc)) from None
    return load_strategy_file(settings.strategies)


def load_hosts(settings: Settings) -> HostIndex:
    """The CMDB host table of ``ALARMFLOW_HOSTS``."""
    return load_host_file(settings.hosts)


def parse_records(
    step_id: str, records: Stream[SourceRecord], parse: Callable[[SourceRecord, float], X]
) -> tuple[Stream[tuple[SourceRecord, X]], Stream[Rejection]]:
    """Apply ``parse(record, now)``; records it fails on come out on the second stream."""
    parsed = guarded_map(
        step_id, records, lambda record: (record, parse(record, time.time())), lambda r: r
    )
    return parsed.oks, parsed.errs


def dead_letters(
    step_id: str, settings: Settings, flow: str, *rejections: Stream[Rejection]
) -> None:
    """Send every rejection stream to the dead-letter topic."""
    merged = op.merge(f"{step_id}_merge", *rejections)
    messages = op.map(f"{step_id}_message", merged, dead_letter(flow))
    op.output(step_id, messages, dead_letter_sink(settings, flow))


def dead_letter_sink(settings: Settings, flow: str) -> DeliveredSink:
    """The dead-letter topic's sink, counting what it delivered; a message larger than the
    topic takes goes without its ``raw`` (:func:`~flows.kafka_io.without_raw`)."""
    delivered = DLQ_PRODUCED.labels(flow).inc
    return DeliveredSink(settings, settings.dlq_topic, flow, "dlq", delivered, without_raw)


def write_once(
    step_id: str, routed: Stream[Routed], settings: Settings, flow: str, kind: str
) -> None:
    """Write every routed record to Redis once (``kind`` labels the written metric); records
    Redis refuses go to the dead-letter topic."""
    op.output(step_id, routed, push_sink(settings, flow, kind))


def write_behind(
    step_id: str,
    batches: Stream[list[Routed]],
    settings: Settings,
    flow: str,
    kind: str,
    topics: tuple[str, ...],
) -> None:
    """Write every batch of routed records to Redis once, as :func:`write_once` does, but
    behind the worker: while Redis runs a batch's writes, the worker works on its next batch
    (:class:`~flows.write_behind.WriteBehindSink`; a snapshot waits for the writes). Each batch is
    keyed by the partition of ``topics`` its first record came from."""
    sink = WriteBehindSink(
        push_sink(settings, flow, kind), lambda: kafka_parts(settings, topics), routed_size
    )
    op.output(step_id, op.filter_map(f"{step_id}_keyed", batches, by_source_part), sink)


def by_source_part(batch: list[Routed]) -> tuple[str, list[Routed]] | None:
    """A batch keyed by the Kafka partition its first record came from (None if it is empty),
    so that its write runs on the worker that read it."""
    if not batch:
        return None
    source = batch[0].source
    return ("" if source is None else part_name(source.topic, source.partition)), batch


def push_sink(settings: Settings, flow: str, kind: str, batched: bool = False) -> PushSink:
    """The sink of :func:`write_once` (and the writes of :func:`write_behind`)."""
    dlq = dead_letter_sink(settings, flow)
    return PushSink(settings, flow, kind, metrics_endpoint(settings), dlq, batched=batched)


def metrics_endpoint(settings: Settings) -> Endpoint:
    """Where the flow serves its metrics, and registers them for Prometheus."""
    return Endpoint(settings.metrics_addr, settings.metrics_port, settings.metrics_targets_dir)


def shard_by_business(
    step_id: str, stream: Stream[X], settings: Settings, biz_of: Callable[[X], object], flow: str
) -> Stream[X]:
    """Keep the records of the businesses this deployment owns on the hash ring
    (``ALARMFLOW_HASH_RING_NODES``/``NODE``), as bkmonitor's host-level dispatch does; the
    others are counted as dropped{reason="other_shard"}. Without a ring the stream is returned
    unchanged: inside one deployment Bytewax already spreads partitions and keys over workers."""
    shard = settings.shard()
    if shard is None:
        return stream
    dropped = DROPPED.labels(flow, Drop.OTHER_SHARD)

    def mine(item: X) -> bool:
        if shard.owns(biz_of(item)):
            return True
        dropped.inc()
        return False

    return op.filter(step_id, stream, mine)
