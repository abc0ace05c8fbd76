"""The latency benchmark's watcher (``bench/alert_latency.py``) on a real Redis."""

from __future__ import annotations

import time

import orjson
import pytest
import redis

from alarmflow.services import RedisServer
from bench.alert_latency import Watcher
from tests.flows.flowrun import wait_until


@pytest.mark.integration
def test_the_watcher_takes_what_lands_and_times_what_carries_its_send_time(
    redis_server: RedisServer, redis_client: redis.Redis, key_prefix: str
) -> None:
    key = f"{key_prefix}.access.alert.201.2001"
    watcher = Watcher(redis_server.url(9), key)
    watcher.start()
    try:
        sent = time.time()
        redis_client.lpush(key, *(orjson.dumps({"n": n, "sent_at": sent}) for n in range(50)))
        redis_client.lpush(key, b'{"probe": true}')
        wait_until(lambda: watcher.seen >= 51, "the watcher takes all 51 entries")
        seen, latencies = watcher.take()
    finally:
        watcher.stop()
    assert seen == 51
    assert len(latencies) == 50
    assert all(0 <= ms < (time.time() - sent) * 1000 + 1 for ms in latencies)
    assert redis_client.llen(key) == 0
    assert watcher.take() == (0, [])
