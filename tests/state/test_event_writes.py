"""What the event flow writes for one anomaly, and its QoS gate on a real Redis."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from operators.event import Decided, EventAnomaly, EventStrategies, access
from operators.event_records import flat_event, format_time
from operators.hosts import parse_hosts
from operators.md5 import count_md5
from operators.strategy import parse_strategies
from state.event_writes import event_push
from state.idempotent import GATED, OncePusher, Op
from state.keys import EVENT_DEDUP_KEY, Backend

T = 1714550400
HOSTS = parse_hosts(
    [{"bk_host_id": 7, "bk_host_innerip": "10.0.0.7", "bk_cloud_id": 0, "bk_biz_id": 2}]
)
STRATEGY = {
    "id": 31,
    "bk_biz_id": 2,
    "update_time": 1714000000,
    "items": [
        {
            "id": 53,
            "algorithms": [{"level": 2}],
            "query_configs": [
                {
                    "data_source_label": "bk_monitor",
                    "data_type_label": "event",
                    "metric_id": "bk_monitor.gse_custom_event",
                }
            ],
        }
    ],
}
STRATEGIES = EventStrategies(parse_strategies([STRATEGY]))


def anomaly(prefix: str, at: int = T) -> EventAnomaly:
    message = {"_server_": "10.0.0.7", "_utctime_": format_time(at), "_value_": ["nginx down"]}
    [record] = flat_event(message)[1]
    [found], _ = access(record, HOSTS, STRATEGIES, prefix, at)
    return found


def test_one_push_per_anomaly_in_bkmonitors_keys_and_order():
    a = anomaly("p")
    push = event_push("p", Decided(a), 600)
    md5 = a.dimension_md5
    assert (push.marker.op, push.marker.key, push.marker.ttl, push.marker.backend) == (
        Op.MARK,
        f"p.access.event.duplicate.{a.record_digest}.31.53",
        600,
        Backend.QUEUE,
    )
    assert [(w.op, w.key, w.ttl, w.backend, w.param) for w in push.writes] == [
        (
            Op.GATE,
            "p.access.event.qos.control",
            1800,
            Backend.SERVICE,
            count_md5([2, 31, 53, "10.0.0.7", 2]),
        ),
        (Op.ZADD, f"p.detect.result.31.53.{md5}.2", 3600, Backend.SERVICE, str(T)),
        (
            Op.HMAX,
            "p.detect.last.checkpoint.31.53",
            604800,
            Backend.SERVICE,
            f"detect.result.{md5}.2",
        ),
        (Op.SET, "p.cache.strategy.snapshot.31.1714000000", 3600, Backend.SERVICE, ""),
        (Op.LPUSH, "p.detect.anomaly.list.31.53", 1800, Backend.QUEUE, ""),
        (Op.SIGNAL, "p.detect.anomaly.signal", 1800, Backend.QUEUE, ""),
    ]
    values = [w.value for w in push.writes]
    assert values[0] == "3"
    assert values[1] == f"{T}|ANOMALY"
    assert values[2] == str(T)
    assert orjson.loads(values[3]) == STRATEGY
    assert orjson.loads(values[4]) == a.element
    assert values[5] == "31.53"


def test_qos_gate_drops_the_fourth_record_of_a_series_while_the_control_hash_exists(
    redis_client, service_client, key_prefix
):
    pusher = OncePusher(redis_client, {Backend.QUEUE: 9, Backend.SERVICE: 10})
    qos = f"{key_prefix}.access.event.qos.control"
    service_client.hset(qos, "other", 0)
    pushes = [event_push(key_prefix, Decided(anomaly(key_prefix, T + i)), 600) for i in range(5)]
    assert pusher.push(pushes) == [1, 0, 0, GATED, GATED]
    field = count_md5([2, 31, 53, "10.0.0.7", 2])
    assert service_client.hget(qos, field) == b"5"
    assert redis_client.llen(f"{key_prefix}.detect.anomaly.list.31.53") == 3
    checkpoint = service_client.hgetall(f"{key_prefix}.detect.last.checkpoint.31.53")
    assert list(checkpoint.values()) == [str(T + 2).encode()]


def test_without_the_control_hash_there_is_no_qos(redis_client, service_client, key_prefix):
    pusher = OncePusher(redis_client, {Backend.QUEUE: 9, Backend.SERVICE: 10})
    pushes = [event_push(key_prefix, Decided(anomaly(key_prefix, T + i)), 600) for i in range(5)]
    assert pusher.push(pushes) == [1, 0, 0, 0, 0]
    assert pusher.push(pushes) == [-1] * 5
    assert not service_client.exists(f"{key_prefix}.access.event.qos.control")
    assert redis_client.llen(f"{key_prefix}.detect.anomaly.list.31.53") == 5
    md5 = pushes[0].writes[1].key.split(".")[-2]
    zset = service_client.zrange(
        f"{key_prefix}.detect.result.31.53.{md5}.2", 0, -1, withscores=True
    )
    assert zset == [(f"{T + i}|ANOMALY".encode(), float(T + i)) for i in range(5)]
    assert redis_client.lrange(f"{key_prefix}.detect.anomaly.signal", 0, -1) == [b"31.53"]


def test_two_events_sharing_an_anomaly_id_are_both_kept_and_a_replay_writes_nothing(
    redis_client, key_prefix
):
    pusher = OncePusher(redis_client, {Backend.QUEUE: 9, Backend.SERVICE: 10})
    found = []
    for text in ("nginx down", "backup failed"):
        message = {"_server_": "10.0.0.7", "_utctime_": format_time(T), "_value_": [text]}
        found += access(flat_event(message)[1][0], HOSTS, STRATEGIES, key_prefix, T)[0]
    assert found[0].anomaly_id == found[1].anomaly_id
    pushes = [event_push(key_prefix, Decided(a), 600) for a in found]
    assert pusher.push(pushes) == [1, 0]
    assert pusher.push(pushes) == [-1, -1]
    assert redis_client.llen(f"{key_prefix}.detect.anomaly.list.31.53") == 2


def test_an_inhibited_anomaly_writes_its_check_result_but_is_not_queued():
    """bkmonitor's ``push()``: ``push_to_check_result`` runs before ``PriorityChecker``, the
    anomaly lists and signals after it, for the records it did not inhibit."""
    a = anomaly("p")
    push = event_push("p", Decided(a, inhibited=True), 600)
    assert [w.op for w in push.writes] == [Op.GATE, Op.ZADD, Op.HMAX, Op.SET]


def test_priority_claims_then_deletions_go_to_the_group_hash_before_the_queue():
    """``sync_priority``: EXPIRE, HMSET of the claims, then HDEL of the expired fields (each
    only while the field holds the expired claim, the hash's TTL left to the claims); then the
    anomaly list and the signal."""
    a = anomaly("p")
    decided = Decided(a, claims=(("m1", "5:1714550400"),), drops=(("m0", "5:1714549000"),))
    push = event_push("p", decided, 600)
    hash_writes = [(w.op, w.key, w.param, w.value, w.backend, w.ttl) for w in push.writes[4:6]]
    assert hash_writes == [
        (Op.HSET, "p.access.data.priority.", "m1", "5:1714550400", Backend.SERVICE, 600),
        (Op.HDROP, "p.access.data.priority.", "m0", "5:1714549000", Backend.SERVICE, 0),
    ]
    assert [w.op for w in push.writes[6:]] == [Op.LPUSH, Op.SIGNAL]


@given(
    st.sampled_from(["p", "access", "access.event.duplicate.", "bk.ee"]),
    st.sampled_from(["10.0.0.7", "10.0.0.8", "", "1"]),
    st.integers(1, 3),
)
def test_the_remembered_marker_and_gate_are_the_plain_ones(prefix, ip, level):
    a = anomaly(prefix)._replace(target_ip=ip, level=level)
    push = event_push(prefix, Decided(a), 600)
    assert push.marker.key == EVENT_DEDUP_KEY.key(
        prefix, record_digest=a.record_digest, strategy_id=31, item_id=53
    )
    gate = push.writes[0]
    assert (gate.op, gate.param) == (Op.GATE, count_md5([2, 31, 53, ip, level]))
