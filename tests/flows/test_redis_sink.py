"""The Redis sink's refused records (``flows/redis_sink.py``), on the real Redis: a record Redis
refuses goes to the dead-letter topic and the rest of its batch is written."""

from __future__ import annotations

import orjson
import pytest
import redis

from flows.outage import Outage
from flows.redis_sink import Routed, _PushPartition, routed_size
from operators.rejects import SourceRecord
from state.acl import acl_rules
from state.idempotent import OncePusher, Op, Push, Write
from state.keys import Backend
from tests.flows.test_outage import Clock


class Collected:
    """A stand-in for the dead-letter partition: keeps what it is given."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []

    def write_batch(self, items):
        self.messages.extend(items)

    def close(self):
        pass


def routed(key_prefix: str, n: int, *writes: Write) -> Routed:
    source = SourceRecord("t.alert", 0, n, f"message {n}".encode())
    push = Push(Write(Op.MARK, f"{key_prefix}.m{n}", ttl=60), writes)
    return Routed(push, None, source)


def partition(pusher, flow: str) -> tuple[_PushPartition, Collected]:
    dlq = Collected()
    clock = Clock()
    outage = Outage(flow, "redis://h:1/9", 60, clock.sleep, lambda: clock.now)
    return _PushPartition(pusher, outage, dlq, flow, "alert", "qos"), dlq


def test_a_record_redis_refuses_goes_to_the_dlq_and_the_rest_is_written(redis_client, key_prefix):
    p = key_prefix
    redis_client.set(f"{p}.string", "not a list")
    items = [
        routed(p, 0, Write(Op.LPUSH, f"{p}.l", b"a")),
        routed(p, 1, Write(Op.LPUSH, f"{p}.string", b"b")),
        routed(p, 2, Write(Op.LPUSH, f"{p}.l", b"c")),
    ]
    sink, dlq = partition(OncePusher(redis_client, {Backend.QUEUE: 9}), "t_refused_record")

    sink.write_batch(items)

    assert redis_client.lrange(f"{p}.l", 0, -1) == [b"c", b"a"]
    [(_, message)] = dlq.messages
    record = orjson.loads(message)
    assert record["reason"] == "internal_error" and record["offset"] == 1
    assert record["error"].startswith("redis: ERR ") and "WRONGTYPE" in record["error"]
    assert record["raw"] == "message 1"


class RefusesBatchesWith:
    """A pusher whose server refuses a whole batch that holds the marker ``bad``."""

    def __init__(self, bad: str) -> None:
        self.bad = bad
        self.batches: list[int] = []

    def push(self, pushes):
        self.batches.append(len(pushes))
        if any(push.marker.key == self.bad for push in pushes):
            raise redis.ResponseError("ERR Protocol error: invalid bulk length")
        return [0] * len(pushes)


def test_a_batch_refused_as_a_whole_is_split_until_the_refused_record_is_alone(key_prefix):
    items = [routed(key_prefix, n) for n in range(8)]
    pusher = RefusesBatchesWith(f"{key_prefix}.m5")
    sink, dlq = partition(pusher, "t_split")

    sink.write_batch(items)

    assert [orjson.loads(m)["offset"] for _, m in dlq.messages] == [5]
    assert "invalid bulk length" in orjson.loads(dlq.messages[0][1])["error"]
    # 8 refused; 0-3 written; 4-7 refused; 4-5 refused; 4 written; 5 refused; 6-7 written.
    assert pusher.batches == [8, 4, 4, 2, 1, 1, 2]


def test_a_list_of_records_counts_in_a_writer_s_queue_for_its_records_and_values():
    lists = [
        routed("p", 1, Write(Op.LPUSH, "p.l", b"x" * 1000), Write(Op.SIGNAL, "p.s", "12")),
        routed("p", 2, Write(Op.LPUSH, "p.l", "ü" * 10)),  # a str counts its characters
    ]
    assert routed_size(lists) == (2, 1000 + 2 + 10)


@pytest.mark.parametrize("missing", ["evalsha", "lpos"])
def test_a_user_refused_the_script_is_waited_out_and_its_records_are_not_dead_lettered(
    redis_server, redis_client, key_prefix, missing
):
    """An ACL user without a command the flows need (``EVALSHA``, or ``LPOS``, which the script
    runs for a signal) is refused each batch as a whole (``NOPERM``): a deployment's fault, not
    the records', so the sink waits as for any outage, and writes the batch once the user is
    granted the command. (The sink used to split the batch down to each record and dead-letter
    every one; without ``LPOS``, each record was refused after its first writes.)"""
    user, password = f"u{key_prefix}", "secret"
    rules = acl_rules(key_prefix).replace(f"+{missing} ", "").split()
    redis_client.execute_command("ACL", "SETUSER", user, "on", f">{password}", *rules)
    url = redis_server.url(9).replace("redis://", f"redis://{user}:{password}@", 1)
    narrow = redis.Redis.from_url(url)
    items = [
        routed(
            key_prefix,
            n,
            Write(Op.LPUSH, f"{key_prefix}.l", b"v"),
            Write(Op.SIGNAL, f"{key_prefix}.s", "1"),
        )
        for n in range(4)
    ]
    dlq = Collected()
    clock = Clock()

    def granted_while_waiting(seconds: float) -> None:
        redis_client.execute_command("ACL", "SETUSER", user, f"+{missing}")
        clock.sleep(seconds)

    outage = Outage("t_noperm", "redis://h:1/9", 60, granted_while_waiting, lambda: clock.now)
    pusher = OncePusher(narrow, {Backend.QUEUE: 9})
    try:
        _PushPartition(pusher, outage, dlq, "t_noperm", "alert", "qos").write_batch(items)
    finally:
        redis_client.execute_command("ACL", "DELUSER", user)
    assert dlq.messages == []
    assert clock.sleeps == [0.1]
    assert redis_client.llen(f"{key_prefix}.l") == 4
    assert redis_client.lrange(f"{key_prefix}.s", 0, -1) == [b"1"]
