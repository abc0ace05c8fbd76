"""A Quix Streams peer of the alert flow, with the flow's own per-record work and push-once
script. Runs in its own virtualenv (Quix Streams pins an older confluent-kafka than Bytewax's
connector wants; ``bench.alert_throughput`` creates it under ``.run/quix-venv``).

    python -m bench.quix_alert --variant branch|chain [--idle-s 1]

- ``branch``: idiomatic Quix Streams: per message an ``apply`` runs the work, then the frame
  branches: rejections are serialised and go ``to_topic`` (the dead-letter topic), records to
  a batching sink that runs the push-once script once per batch.
- ``chain``: one chain: the sink gets records and rejections alike, pushes the records once
  per batch and produces the rejections to the dead-letter topic itself.

Reads the alert topic from the beginning and stops once it has been idle for ``--idle-s``.
Settings come from the flow's environment variables. Quix Streams keeps its state in a
temporary directory (its default, ``./state``, would land in this repository's package).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid

from confluent_kafka import Producer
from quixstreams import Application, message_context
from quixstreams.sinks import BatchingSink, SinkBatch

from alarmflow.config import settings_or_exit
from alarmflow.connections import kafka_config, redis_client
from operators.alert_access import AlertAccess
from operators.rejects import Rejection, SourceRecord
from operators.strategy import load_strategy_file
from state.idempotent import OncePusher, Push

FLOW = "alert"


class PushSink(BatchingSink):
    """Pushes each batch of records once; with a producer, also sends the rejections."""

    def __init__(self, pusher: OncePusher, dlq: Producer | None = None, dlq_topic: str = ""):
        super().__init__()
        self._pusher = pusher
        self._dlq = dlq
        self._dlq_topic = dlq_topic

    def write(self, batch: SinkBatch) -> None:
        pushes = []
        for item in batch:
            if isinstance(item.value, Push):
                pushes.append(item.value)
            elif self._dlq is not None:
                self._dlq.produce(self._dlq_topic, item.value.to_dlq(FLOW))
        self._pusher.push(pushes)
        if self._dlq is not None:
            self._dlq.flush(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=("branch", "chain"), required=True)
    parser.add_argument("--idle-s", type=float, default=1.0)
    args = parser.parse_args()
    settings = settings_or_exit()
    access = AlertAccess.from_settings(settings, load_strategy_file(settings.strategies))
    pusher = OncePusher(redis_client(settings.redis_url, settings), settings.redis_dbs())

    def work(value: bytes) -> Push | Rejection | None:
        ctx = message_context()
        record = SourceRecord(ctx.topic, ctx.partition, ctx.offset, value)
        out = access([record], time.time())
        if out.pushes:
            return out.pushes[0][0]
        return out.rejected[0] if out.rejected else None

    state_dir = tempfile.TemporaryDirectory(prefix="alarmflow-bench-quix-")
    app = Application(
        broker_address=settings.kafka_bootstrap,
        consumer_group=f"alarmflow-bench-quix-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        commit_interval=1.0,
        loglevel="WARNING",
        state_dir=state_dir.name,
    )
    alerts = app.topic(settings.topics_for(FLOW)[0], value_deserializer="bytes")
    outcomes = app.dataframe(alerts).apply(work).filter(lambda v: v is not None)
    if args.variant == "branch":
        dlq = app.topic(settings.dlq_topic, value_serializer="bytes")
        rejected = outcomes.filter(lambda v: isinstance(v, Rejection))
        rejected.apply(lambda r: r.to_dlq(FLOW)).to_topic(dlq)
        outcomes.filter(lambda v: isinstance(v, Push)).sink(PushSink(pusher))
    else:
        producer = Producer(kafka_config(settings, {"acks": "all"}))
        outcomes.sink(PushSink(pusher, producer, settings.dlq_topic))
    with state_dir:
        app.run(timeout=args.idle_s, collect=False)


if __name__ == "__main__":
    main()
