"""Building blocks shared by every flow: settings at start, rejection splitting, DLQ wiring."""

from __future__ import annotations

import gc
import logging
import sys
import time
from collections.abc import Callable
from typing import TypeVar

import bytewax.operators as op
import redis
from bytewax.dataflow import Dataflow, Stream

from alarmflow.config import ConfigError, Settings, load_settings
from alarmflow.metrics import DLQ_PRODUCED, DROPPED
from flows.guard import guarded_map
from flows.kafka_io import DeliveredSink, dead_letter
from flows.redis_sink import PushSink, Routed
from operators.hosts import HostError, HostIndex, load_host_file
from operators.rejects import Rejection, SourceRecord
from operators.strategy import Strategy, StrategyError, load_strategy_file
from state.strategy_cache import load_cached_strategies

X = TypeVar("X")

logging.basicConfig(
    level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
)


GC_THRESHOLDS = (50_000, 20, 100)
"""The collector's thresholds while a flow runs (Python's are 700, 10, 10): a flow allocates
and frees many short-lived objects per record and keeps few, so collecting the young
generation every 50,000 allocations instead of every 700 saves ~5 % of the alert flow's CPU
time (measured, bench/gc_settings.py)."""


def settle_heap() -> None:
    """After start-up: move what start-up built (modules, strategies, routers) out of the
    collector's sight (``gc.freeze``) and collect less often (:data:`GC_THRESHOLDS`)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def flow_from_env(build: Callable[[Settings], Dataflow]) -> Dataflow:
    """Build a flow from the environment; on bad config print one line per problem and exit 2."""
    try:
        flow = build(load_settings())
    except (ConfigError, StrategyError, HostError) as exc:
        for line in str(exc).splitlines():
            print(f"alarmflow: config error: {line}", file=sys.stderr)
        raise SystemExit(2) from None
    settle_heap()
    return flow


def load_strategies(settings: Settings) -> tuple[Strategy, ...]:
    """From the strategies file, or from bkmonitor's strategy cache when it is ``redis``."""
    if settings.strategies == "redis":
        client = redis.Redis.from_url(settings.redis_cache_url, socket_connect_timeout=3)
        try:
            return load_cached_strategies(client, settings.key_prefix)
        except redis.RedisError as exc:
            raise StrategyError(f"ALARMFLOW_STRATEGIES=redis: {exc}") from None
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
    delivered = DLQ_PRODUCED.labels(flow).inc
    sink = DeliveredSink(settings.kafka_bootstrap, settings.dlq_topic, flow, "dlq", delivered)
    op.output(step_id, messages, sink)


def write_once(
    step_id: str, routed: Stream[Routed], settings: Settings, flow: str, kind: str
) -> None:
    """Write every routed record to Redis once (``kind`` labels the written metric)."""
    endpoint = (settings.metrics_addr, settings.metrics_port)
    sink = PushSink(settings.redis_url, settings.redis_dbs(), flow, kind, endpoint)
    op.output(step_id, routed, sink)


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
    dropped = DROPPED.labels(flow, "other_shard")

    def mine(item: X) -> bool:
        if shard.owns(biz_of(item)):
            return True
        dropped.inc()
        return False

    return op.filter(step_id, stream, mine)
