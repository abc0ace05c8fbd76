"""bkmonitor's converge counter lock on the real Redis (``processor.lock``)."""

from __future__ import annotations

import pytest

from state.converge_lock import RedisLock

pytestmark = pytest.mark.integration


def test_parallel_holders_then_busy_then_released(redis_client, key_prefix):
    lock = RedisLock(redis_client, key_prefix)
    key = f"{key_prefix}.fta_action.converge.!sha1#d.process.lock"
    assert lock.acquire("!sha1#d", 2) and lock.acquire("!sha1#d", 2)
    assert not lock.acquire("!sha1#d", 2)
    assert int(redis_client.get(key)) == 2
    assert 0 < redis_client.ttl(key) <= 60
    lock.release("!sha1#d")
    assert lock.acquire("!sha1#d", 2)
    for _ in range(3):
        lock.release("!sha1#d")
    assert int(redis_client.get(key)) == 0, "release never goes below zero"


def test_a_busy_counter_without_ttl_gets_one(redis_client, key_prefix):
    key = f"{key_prefix}.fta_action.converge.!sha1#e.process.lock"
    redis_client.set(key, 5)
    assert not RedisLock(redis_client, key_prefix).acquire("!sha1#e", 1)
    assert int(redis_client.get(key)) == 5
    assert 0 < redis_client.ttl(key) <= 60
