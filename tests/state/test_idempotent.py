"""The push-once script on a real Redis: each write kind, markers, gates, databases, signals."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.outage import unavailable
from operators import _native
from state import idempotent
from state.idempotent import DUPLICATE, GATED, OncePusher, Op, Push, Write
from state.keys import Backend
from tests import main_33cd407
from tests.refusals import REFUSALS, refuse_writes, take_writes

DBS = {Backend.QUEUE: 1, Backend.SERVICE: 2}


@pytest.fixture
def client(redis_server):
    return redis.Redis.from_url(redis_server.url(1))


@pytest.fixture
def service(redis_server):
    return redis.Redis.from_url(redis_server.url(2))


def mark(key: str, ttl: int = 60) -> Write:
    return Write(Op.MARK, key, ttl=ttl)


def lpush(key: str, value: bytes, ttl: int = 1800) -> Write:
    return Write(Op.LPUSH, key, value, ttl)


def signal(key: str, member: str, ttl: int = 1800) -> Write:
    return Write(Op.SIGNAL, key, member, ttl)


def test_a_push_writes_lists_then_signals_with_ttls(client, key_prefix):
    p = key_prefix
    pusher = OncePusher(client, DBS)
    push = Push(
        mark(f"{p}.m1"),
        (lpush(f"{p}.l1", b"a"), lpush(f"{p}.l2", b"a"), signal(f"{p}.sig", "7", 900)),
    )
    assert pusher.push([push]) == [1]
    assert client.lrange(f"{p}.l1", 0, -1) == [b"a"]
    assert client.lrange(f"{p}.sig", 0, -1) == [b"7"]
    assert 0 < client.ttl(f"{p}.m1") <= 60
    assert 1790 < client.ttl(f"{p}.l1") <= 1800
    assert 890 < client.ttl(f"{p}.sig") <= 900


def test_a_replayed_batch_writes_nothing(client, key_prefix):
    p = key_prefix
    pusher = OncePusher(client, DBS)
    batch = [
        Push(mark(f"{p}.m{i}"), (lpush(f"{p}.l", f"v{i}".encode()), signal(f"{p}.sig", "1")))
        for i in range(5)
    ]
    assert pusher.push(batch) == [1, 0, 0, 0, 0]
    assert pusher.push(batch[2:]) == [DUPLICATE] * 3
    assert client.llen(f"{p}.l") == 5


def test_a_pending_signal_is_not_pushed_again_but_a_consumed_one_is(client, key_prefix):
    p = key_prefix
    pusher = OncePusher(client, DBS)
    sig = f"{p}.sig"
    pusher.push(
        [
            Push(mark(f"{p}.a"), (lpush(f"{p}.l", b"a"), signal(sig, "1"))),
            Push(mark(f"{p}.b"), (lpush(f"{p}.l", b"b"), signal(sig, "1"), signal(sig, "2"))),
        ]
    )
    assert client.lrange(sig, 0, -1) == [b"2", b"1"]
    assert client.rpop(sig) == b"1"
    pusher.push([Push(mark(f"{p}.c"), (lpush(f"{p}.l", b"c"), signal(sig, "1")))])
    assert client.lrange(sig, 0, -1) == [b"1", b"2"]


def test_an_empty_batch_does_nothing(client):
    assert OncePusher(client, DBS).push([]) == []


def test_a_repeat_inside_one_batch_is_a_duplicate(client, key_prefix):
    p = key_prefix
    pusher = OncePusher(client, DBS)
    a = Push(mark(f"{p}.a"), (lpush(f"{p}.l1", b"a"), signal(f"{p}.sig", "1")))
    b = Push(mark(f"{p}.b"), (lpush(f"{p}.l1", b"b"),))
    assert pusher.push([a, b, a]) == [1, 0, DUPLICATE]
    assert client.lrange(f"{p}.l1", 0, -1) == [b"b", b"a"]


def test_every_data_kind_and_its_ttl(client, key_prefix):
    p = key_prefix
    pusher = OncePusher(client, DBS)
    push = Push(
        mark(f"{p}.m"),
        (
            Write(Op.SET, f"{p}.doc", b'{"v": 1}', 900),
            Write(Op.SADD, f"{p}.set", "a1", 900),
            Write(Op.ZADD, f"{p}.z", "100|ANOMALY", 3600, "100"),
            Write(Op.HSET, f"{p}.h", "5", 0, "f"),
        ),
    )
    assert pusher.push([push, push]) == [0, DUPLICATE]
    assert client.get(f"{p}.doc") == b'{"v": 1}'
    assert client.smembers(f"{p}.set") == {b"a1"}
    assert client.zrange(f"{p}.z", 0, -1, withscores=True) == [(b"100|ANOMALY", 100.0)]
    assert client.hget(f"{p}.h", "f") == b"5"
    assert 890 < client.ttl(f"{p}.doc") <= 900
    assert 3590 < client.ttl(f"{p}.z") <= 3600
    assert client.ttl(f"{p}.h") == -1


def test_hmax_keeps_the_larger_number(client, key_prefix):
    p = key_prefix
    pusher = OncePusher(client, DBS)
    pushes = [
        Push(mark(f"{p}.m{i}"), (Write(Op.HMAX, f"{p}.cp", str(t), 60, "f"),))
        for i, t in enumerate((100, 300, 200))
    ]
    pusher.push(pushes)
    assert client.hget(f"{p}.cp", "f") == b"300"


def test_hdrop_deletes_a_field_only_while_it_holds_the_expired_value(client, key_prefix):
    """A priority claim that expired is deleted (``sync_priority``'s HDEL), unless the field
    was claimed again since: a drop that reaches Redis after a newer claim keeps the claim."""
    p = key_prefix
    client.hset(f"{p}.h", mapping={"old": "3:100", "again": "3:900", "kept": "1:700"})
    client.expire(f"{p}.h", 600)
    pusher = OncePusher(client, DBS)
    drops = (
        Write(Op.HDROP, f"{p}.h", "3:100", 0, "old"),
        Write(Op.HDROP, f"{p}.h", "3:100", 0, "again"),
        Write(Op.HDROP, f"{p}.h", "3:100", 0, "absent"),
    )
    assert pusher.push([Push(mark(f"{p}.m"), drops)]) == [0]
    assert client.hgetall(f"{p}.h") == {b"again": b"3:900", b"kept": b"1:700"}
    assert 590 < client.ttl(f"{p}.h") <= 600


def test_a_set_member_as_marker_deduplicates_like_bkmonitor_dedup_sets(client, key_prefix):
    p = key_prefix
    pusher = OncePusher(client, DBS)
    dedup = f"{p}.dup.60"

    def record(rid: str) -> Push:
        return Push(Write(Op.SADD, dedup, rid, 600), (lpush(f"{p}.l", rid.encode()),))

    assert pusher.push([record("a.60"), record("b.60"), record("a.60")]) == [0, 0, DUPLICATE]
    assert client.smembers(dedup) == {b"a.60", b"b.60"}
    assert 590 < client.ttl(dedup) <= 600
    assert client.lrange(f"{p}.l", 0, -1) == [b"b.60", b"a.60"]


def test_a_gate_counts_once_per_record_and_only_when_its_hash_exists(client, key_prefix):
    p = key_prefix
    pusher = OncePusher(client, DBS)
    qos = f"{p}.qos"

    def record(i: int) -> Push:
        gate = Write(Op.GATE, qos, "3", 0, "dims")
        return Push(mark(f"{p}.m{i}"), (gate, lpush(f"{p}.l", str(i).encode())))

    assert pusher.push([record(0)]) == [0]
    assert not client.exists(qos)
    client.hset(qos, "other", 0)
    assert pusher.push([record(i) for i in range(1, 6)]) == [0, 0, 0, GATED, GATED]
    assert pusher.push([record(4)]) == [DUPLICATE]
    assert client.hget(qos, "dims") == b"5"
    assert client.lrange(f"{p}.l", 0, -1) == [b"3", b"2", b"1", b"0"]


def test_writes_land_in_their_backends_database_in_one_script(client, service, key_prefix):
    p = key_prefix
    pusher = OncePusher(client, DBS)
    push = Push(
        mark(f"{p}.m"),
        (
            Write(Op.ZADD, f"{p}.result", "1|ANOMALY", 60, "1", Backend.SERVICE),
            lpush(f"{p}.anomaly", b"x"),
            Write(Op.HMAX, f"{p}.checkpoint", "1", 60, "f", Backend.SERVICE),
            signal(f"{p}.sig", "1.2"),
        ),
    )
    assert pusher.push([push]) == [1]
    assert service.zcard(f"{p}.result") == 1
    assert service.hget(f"{p}.checkpoint", "f") == b"1"
    assert not client.exists(f"{p}.result")
    assert client.lrange(f"{p}.anomaly", 0, -1) == [b"x"]
    assert client.exists(f"{p}.m")
    assert client.lrange(f"{p}.sig", 0, -1) == [b"1.2"]


def test_a_long_batch_into_one_list_keeps_push_order(client, key_prefix):
    p = key_prefix
    pusher = OncePusher(client, DBS)
    batch = [Push(mark(f"{p}.m{i}"), (lpush(f"{p}.l", str(i).encode()),)) for i in range(2500)]
    assert pusher.push(batch) == [0] * 2500
    assert client.lrange(f"{p}.l", 0, -1) == [str(i).encode() for i in reversed(range(2500))]


def exact_content(client: redis.Redis, key: bytes, kind: str) -> object:
    if kind == "list":
        return client.lrange(key, 0, -1)
    if kind == "set":
        return sorted(client.smembers(key))
    if kind == "zset":
        return client.zrange(key, 0, -1, withscores=True)
    if kind == "hash":
        return sorted(client.hgetall(key).items())
    return client.get(key)


def exact_state(clients: dict[str, redis.Redis], prefix: str) -> dict:
    """Every key under ``prefix`` in each database, byte for byte: lists in order, and its
    TTL to the second."""
    state = {}
    for db, client in clients.items():
        for key in client.scan_iter(match=f"{prefix}.*", count=1000):
            kind = client.type(key).decode()
            state[db, key[len(prefix) :]] = (
                kind,
                exact_content(client, key, kind),
                client.ttl(key),
            )
    return state


def same_state(clients: dict[str, redis.Redis], prefix: str, other: str) -> bool:
    """The same keys, kinds and contents under both prefixes, and TTLs that differ by no more
    than the time it took to read them."""
    started = time.monotonic()
    left, right = exact_state(clients, prefix), exact_state(clients, other)
    slack = time.monotonic() - started + 1
    if left.keys() != right.keys():
        return False
    for key, (kind, content, ttl) in left.items():
        other_kind, other_content, other_ttl = right[key]
        if (kind, content) != (other_kind, other_content) or abs(ttl - other_ttl) > slack:
            return False
    return True


# Each kind of write has its own keys, as the key registry gives them: no key is written by
# two kinds (that would be a Redis type error in either script).
ttls = st.sampled_from([0, 60, 900])
dbs = st.sampled_from([Backend.QUEUE, Backend.SERVICE])
small = st.sampled_from(["1", "2", "3", "10"])


def writes_of(op: Op, keys: int, values, params=None):
    return st.builds(
        lambda n, v, t, q, b: Write(op, f"{{p}}.{op.value}{n}", v, t, q, b),
        st.integers(0, keys - 1),
        values,
        ttls,
        st.just("") if params is None else params,
        dbs,
    )


data_writes = (
    writes_of(Op.LPUSH, 3, st.binary(max_size=3))
    | writes_of(Op.SIGNAL, 2, small)
    | writes_of(Op.SET, 2, small)
    | writes_of(Op.SADD, 2, small)
    | writes_of(Op.ZADD, 2, small, small)
    | writes_of(Op.HSET, 2, small, small)
    | writes_of(Op.HMAX, 2, small, small)
)
markers = writes_of(Op.MARK, 6, st.just(b"")).filter(lambda w: w.ttl > 0) | writes_of(
    Op.SADD, 1, small
).map(lambda w: w._replace(key=w.key.replace("sadd", "dedup")))
gates = writes_of(Op.GATE, 1, st.sampled_from(["1", "2"]), small)
pushes = st.builds(
    lambda marker, gate, rest: Push(marker, (*gate, *rest)),
    markers,
    st.lists(gates, max_size=1),
    st.lists(data_writes, max_size=5),
)


@pytest.mark.parametrize("call_bytes", [idempotent.MAX_CALL_BYTES, 2])
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.lists(pushes, max_size=8), min_size=1, max_size=4), st.data())
def test_the_batched_script_leaves_redis_as_mains_script_does(
    client, service, monkeypatch, call_bytes, batches, data
):
    """Batches of random pushes through today's script and main's (commit 33cd407, frozen in
    tests/main_33cd407.py), each under its own prefix: same results, same Redis bytes; also
    when a batch is split into calls of a few records each (a tiny ``MAX_CALL_BYTES``)."""
    monkeypatch.setattr(idempotent, "MAX_CALL_BYTES", call_bytes)
    clients = {"queue": client, "service": service}
    prefixes = {"old": f"old{uuid.uuid4().hex[:8]}", "new": f"new{uuid.uuid4().hex[:8]}"}
    pushers = {"old": main_33cd407.OncePusher(client, DBS), "new": OncePusher(client, DBS)}
    for name in prefixes:
        client.hset(f"{prefixes[name]}.gate0", "seed", 0)
    for batch in batches:
        consumed = data.draw(st.booleans())
        results = {}
        for name, prefix in prefixes.items():
            at = [
                Push(
                    push.marker._replace(key=push.marker.key.format(p=prefix)),
                    tuple(w._replace(key=w.key.format(p=prefix)) for w in push.writes),
                )
                for push in batch
            ]
            results[name] = pushers[name].push(at)
            if consumed:
                for db_client in clients.values():
                    db_client.rpop(f"{prefix}.signal0")
        assert results["new"] == results["old"]
    assert same_state(clients, prefixes["new"], prefixes["old"])


def test_a_record_whose_write_fails_reports_its_error_and_the_batch_goes_on(client, key_prefix):
    p = key_prefix
    pusher = OncePusher(client, DBS)
    client.set(f"{p}.string", "not a list")
    batch = [
        Push(mark(f"{p}.m0"), (lpush(f"{p}.l", b"a"),)),
        Push(mark(f"{p}.m1"), (lpush(f"{p}.l", b"b"), lpush(f"{p}.string", b"x"))),
        Push(mark(f"{p}.m2"), (Write(Op.ZADD, f"{p}.z", b"v", 60, "not a score"),)),
        Push(mark(f"{p}.m3"), (lpush(f"{p}.l", b"c"),)),
    ]

    first, wrong_type, not_a_float, last = pusher.push(batch)

    assert (first, last) == (0, 0)
    assert wrong_type.startswith("ERR ") and "WRONGTYPE" in wrong_type
    assert not_a_float.startswith("ERR ") and "float" in not_a_float
    # Redis keeps the writes that ran before the failing one; the markers are taken back.
    assert client.lrange(f"{p}.l", 0, -1) == [b"c", b"b", b"a"]
    assert not client.exists(f"{p}.m1") and not client.exists(f"{p}.m2")
    assert client.exists(f"{p}.m0") and client.exists(f"{p}.m3")


@pytest.mark.parametrize(
    "push", [("marker",), (Write(Op.MARK, "k"), ["not a tuple"]), ("x", ("y",))]
)
def test_the_script_s_arguments_are_made_only_of_pushes(push):
    with pytest.raises(TypeError):
        _native.flatten_pushes([push], {}, lambda *shape: "spec")


@pytest.fixture
def small_redis(own_redis_server) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(own_redis_server.url(1))
    yield client
    client.close()


@pytest.mark.parametrize(("how", "says"), REFUSALS.items())
@pytest.mark.parametrize(("replicas", "call_bytes"), [(0, None), (0, 2), (1, None)])
def test_a_server_that_takes_no_writes_refuses_the_call_not_each_record(
    small_redis, free_port, monkeypatch, how, says, replicas, call_bytes
):
    """Out of memory, a replica, too few replicas, a snapshot that failed: Redis refuses a
    script's writes from its first one, so the call is refused as a whole with the server's
    error (the sink waits it out as an outage, ``flows.outage.unavailable``) instead of each
    record reporting it as its own error (which the sink would dead-letter), and nothing is
    written. The same through a pipeline: calls split by size, or followed by ``WAIT`` for
    replicas."""
    if call_bytes is not None:
        monkeypatch.setattr(idempotent, "MAX_CALL_BYTES", call_bytes)
    batch = [Push(mark(f"m{i}"), (lpush("l", b"v"), signal("s", "1"))) for i in range(3)]
    refuse_writes(small_redis, how, free_port)
    with pytest.raises(redis.RedisError, match=says) as refused:
        OncePusher(small_redis, DBS, replicas, replica_timeout_ms=10).push(batch)
    assert unavailable(refused.value)
    take_writes(small_redis)
    assert small_redis.keys() == []
    assert OncePusher(small_redis, DBS).push(batch) == [1, 0, 0]


def test_a_batch_larger_than_redis_s_free_memory_is_written_in_calls_that_fit(
    small_redis, monkeypatch
):
    """Redis counts a call's arguments against ``maxmemory`` while it runs and refuses the whole
    call past it (``OutOfMemoryError``, an outage to the sink, retried until the flow stops),
    even when the call writes nothing new: here a replay of 40 records of 256 KiB, every one
    written already, with 4 MiB free. In calls of up to ``MAX_CALL_BYTES`` (1 MiB here) each
    call fits, and the replay finds its 40 duplicates."""
    batch = [Push(mark(f"m{i}"), (lpush("l", bytes([i]) * (256 << 10)),)) for i in range(40)]
    pusher = OncePusher(small_redis, DBS)
    assert pusher.push(batch) == [0] * 40
    used = small_redis.info("memory")["used_memory"]
    small_redis.config_set("maxmemory", used + (4 << 20))
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        pusher.push(batch)
    monkeypatch.setattr(idempotent, "MAX_CALL_BYTES", 1 << 20)
    assert pusher.push(batch) == [DUPLICATE] * 40
    assert small_redis.llen("l") == 40
