"""The push-once script on a real Redis: data before signal, nothing twice, one pending signal."""

from __future__ import annotations

import pytest
import redis

from state.idempotent import OncePusher, Push, PushPolicy


@pytest.fixture
def client(redis_server):
    return redis.Redis.from_url(redis_server.url(1))


def test_a_push_writes_lists_then_signals_with_ttls(client, key_prefix):
    p = key_prefix
    pusher = OncePusher(client, PushPolicy(f"{p}.sig", 60, 1800, 900))
    assert pusher.push([Push(f"{p}.m1", ((f"{p}.l1", b"a"), (f"{p}.l2", b"a")), ("7",))]) == [1]
    assert client.lrange(f"{p}.l1", 0, -1) == [b"a"]
    assert client.lrange(f"{p}.sig", 0, -1) == [b"7"]
    assert 0 < client.ttl(f"{p}.m1") <= 60
    assert 1790 < client.ttl(f"{p}.l1") <= 1800
    assert 890 < client.ttl(f"{p}.sig") <= 900


def test_a_replayed_batch_writes_nothing(client, key_prefix):
    p = key_prefix
    pusher = OncePusher(client, PushPolicy(f"{p}.sig", 60, 1800, 1800))
    batch = [Push(f"{p}.m{i}", ((f"{p}.l", f"v{i}".encode()),), ("1",)) for i in range(5)]
    assert pusher.push(batch) == [1, 0, 0, 0, 0]
    assert pusher.push(batch[2:]) == [None] * 3
    assert client.llen(f"{p}.l") == 5


def test_a_pending_signal_is_not_pushed_again_but_a_consumed_one_is(client, key_prefix):
    p = key_prefix
    pusher = OncePusher(client, PushPolicy(f"{p}.sig", 60, 1800, 1800))
    pusher.push(
        [
            Push(f"{p}.a", ((f"{p}.l", b"a"),), ("1",)),
            Push(f"{p}.b", ((f"{p}.l", b"b"),), ("1", "2")),
        ]
    )
    assert client.lrange(f"{p}.sig", 0, -1) == [b"2", b"1"]
    assert client.rpop(f"{p}.sig") == b"1"
    pusher.push([Push(f"{p}.c", ((f"{p}.l", b"c"),), ("1",))])
    assert client.lrange(f"{p}.sig", 0, -1) == [b"1", b"2"]


def test_an_empty_batch_does_nothing(client, key_prefix):
    assert OncePusher(client, PushPolicy(f"{key_prefix}.sig", 1, 1, 1)).push([]) == []


def test_records_of_different_shapes_and_a_repeat_inside_one_batch(client, key_prefix):
    p = key_prefix
    pusher = OncePusher(client, PushPolicy(f"{p}.sig", 60, 1800, 1800))
    batch = [
        Push(f"{p}.a", ((f"{p}.l1", b"a"), (f"{p}.l2", b"a"), (f"{p}.l3", b"a")), ("1", "2")),
        Push(f"{p}.b", ((f"{p}.l1", b"b"),), ()),
        Push(f"{p}.a", ((f"{p}.l1", b"a"),), ("1",)),
        Push(f"{p}.c", ((f"{p}.l2", b"c"),), ("3", "1")),
    ]
    assert pusher.push(batch) == [2, 0, None, 1]
    assert client.lrange(f"{p}.l1", 0, -1) == [b"b", b"a"]
    assert client.lrange(f"{p}.l2", 0, -1) == [b"c", b"a"]
    assert client.lrange(f"{p}.l3", 0, -1) == [b"a"]
    assert client.lrange(f"{p}.sig", 0, -1) == [b"3", b"2", b"1"]


def test_strings_and_set_members_are_written_with_the_data_ttl_and_only_once(client, key_prefix):
    p = key_prefix
    pusher = OncePusher(client, PushPolicy(f"{p}.sig", 60, 900, 1800))
    push = Push(
        f"{p}.m",
        ((f"{p}.history", b"h1"),),
        ("42",),
        strings=((f"{p}.doc", b'{"v": 1}'),),
        members=((f"{p}.alerts", "a1"), (f"{p}.alerts", "a2")),
    )
    assert pusher.push([push, push]) == [1, None]
    assert client.get(f"{p}.doc") == b'{"v": 1}'
    assert client.smembers(f"{p}.alerts") == {b"a1", b"a2"}
    assert client.lrange(f"{p}.history", 0, -1) == [b"h1"]
    assert 890 < client.ttl(f"{p}.doc") <= 900
    assert 890 < client.ttl(f"{p}.alerts") <= 900
