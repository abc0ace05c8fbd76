"""Building blocks shared by every flow: settings at start, rejection splitting, DLQ wiring."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import TypeVar

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream

from alarmflow.config import ConfigError, Settings, load_settings
from flows.kafka_io import DeadLetterSink
from operators.rejects import Rejected, Rejection, SourceRecord
from operators.strategy import Strategy, StrategyError, load_strategy_file

X = TypeVar("X")

logging.basicConfig(
    level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
)


def flow_from_env(build: Callable[[Settings], Dataflow]) -> Dataflow:
    """Build a flow from the environment; on bad config print one line per problem and exit 2."""
    try:
        return build(load_settings())
    except (ConfigError, StrategyError) as exc:
        for line in str(exc).splitlines():
            print(f"alarmflow: config error: {line}", file=sys.stderr)
        raise SystemExit(2) from None


def load_strategies(settings: Settings) -> tuple[Strategy, ...]:
    if settings.strategies == "redis":
        raise StrategyError(
            "ALARMFLOW_STRATEGIES=redis: reading bkmonitor's cache is not built yet"
        )
    return load_strategy_file(settings.strategies)


def parse_records(
    step_id: str, records: Stream[SourceRecord], parse: Callable[[SourceRecord, float], X]
) -> tuple[Stream[tuple[SourceRecord, X]], Stream[Rejection]]:
    """Apply ``parse(record, now)``; records it rejects come out on the second stream."""

    def attempt(record: SourceRecord) -> tuple[SourceRecord, X] | Rejection:
        try:
            return record, parse(record, time.time())
        except Rejected as exc:
            return Rejection(exc.reason, exc.error, record)

    parsed = op.map(step_id, records, attempt)
    split = op.branch(f"{step_id}_ok", parsed, lambda item: not isinstance(item, Rejection))
    return split.trues, split.falses


def dead_letters(
    step_id: str, settings: Settings, flow: str, *rejections: Stream[Rejection]
) -> None:
    """Send every rejection stream to the dead-letter topic."""
    op.output(step_id, op.merge(f"{step_id}_merge", *rejections), DeadLetterSink(settings, flow))
