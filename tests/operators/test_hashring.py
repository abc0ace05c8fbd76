from hashlib import md5

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.hashring import HashRing, Shard, ring_point

NODES = ["node-a", "node-b", "node-c"]


def reference_node(nodes: list[str], key: object) -> str:
    """bkmonitor's assignment by a linear scan: the owner of the smallest point at or after the
    key's hash, else of the smallest point (a later node overwrites a shared point)."""

    def h(text: str) -> int:
        return int(md5(text.encode()).hexdigest(), 16) % 2**32

    owner = {}
    for node in sorted(nodes):
        for i in range(65536 // len(nodes)):
            owner[h(f"{node}{i}")] = node
    at = h(str(key))
    after = [point for point in owner if point >= at]
    return owner[min(after) if after else min(owner)]


def test_points_are_md5_mod_2_32():
    assert ring_point("node-a0") == int(md5(b"node-a0").hexdigest(), 16) % 2**32


def test_every_node_gets_65536_over_n_points():
    assert HashRing(NODES).replicas == 65536 // 3
    assert HashRing(["only"]).replicas == 65536


@pytest.mark.parametrize(
    ("key", "node"),
    [(2, "node-c"), ("2", "node-c"), (3, "node-b"), (7, "node-b"), (1001, "node-a")],
)
def test_concrete_assignments_match_the_reference(key, node):
    assert HashRing(NODES).get_node(key) == node
    assert reference_node(NODES, key) == node


def test_keys_past_the_last_point_wrap_to_the_first():
    # key 129748 hashes above the last point (owned by node-b); the first belongs to node-a.
    ring = HashRing(NODES)
    assert ring_point("129748") > ring.points[-1]
    assert ring.get_node(129748) == "node-a" == reference_node(NODES, 129748)


def test_a_shared_point_belongs_to_the_later_node_and_the_ring_keeps_its_length():
    # host-1 replica 8853 and host-1001 replica 24095 both hash to 3148458951; key 214531
    # falls just before that point.
    nodes = ["host-1001", "host-1"]
    assert ring_point("host-18853") == ring_point("host-100124095") == 3148458951
    ring = HashRing(nodes)
    assert ring.get_node(214531) == "host-1001" == reference_node(nodes, 214531)
    assert len(ring.points) == 65536


def test_an_empty_ring_is_refused():
    with pytest.raises(ValueError, match="at least one node"):
        HashRing([])


def test_a_shard_owns_its_keys_and_only_them():
    shards = [Shard(NODES, node) for node in NODES]
    for biz in range(50):
        assert sum(shard.owns(biz) for shard in shards) == 1
    assert Shard(NODES, "node-c").owns(2)


def test_a_shard_must_be_a_node_of_the_ring():
    with pytest.raises(ValueError, match="'node-x' is not one of the ring's nodes"):
        Shard(NODES, "node-x")


def test_partitions_are_keyed_like_bkmonitor_real_time_access():
    shard = Shard(NODES, "node-a")
    key = "kafka:9092|0bkmonitor_1001|3"
    assert shard.owns_partition("kafka:9092", "0bkmonitor_1001", 3) == shard.owns(key)


# Names end in a letter, as deployment and host names do. Names such as "0" and "00" give the
# same points ("0" + "012" == "00" + "12"), which bkmonitor's ring allows too; that degenerate
# overlap is not what the join bound below is about.
node_name = st.from_regex(r"[a-h]|[a-h][a-h0-9-]{0,6}[a-h]", fullmatch=True)
node_names = st.lists(node_name, min_size=1, max_size=5, unique=True)


@settings(max_examples=15, deadline=None)
@given(node_names, st.randoms(use_true_random=False))
def test_the_node_does_not_depend_on_the_order_nodes_are_given(nodes, rng):
    shuffled = list(nodes)
    rng.shuffle(shuffled)
    one, other = HashRing(nodes), HashRing(shuffled)
    assert all(one.get_node(key) == other.get_node(key) for key in range(500))


@settings(max_examples=10, deadline=None)
@given(node_names, node_name)
def test_a_join_moves_a_bounded_share_of_keys_to_the_new_node_or_off_dropped_points(nodes, joining):
    # Each node has 65536 // n points, so a join also drops points of the old nodes: a key moves
    # to the joining node, or off a point that no longer exists (bkmonitor's ring does this too).
    if joining in nodes:
        return
    before, after = HashRing(nodes), HashRing([*nodes, joining])
    keys = range(2000)
    moved = [key for key in keys if before.get_node(key) != after.get_node(key)]
    for key in moved:
        assert after.get_node(key) == joining or before.point_of(key) not in after.owner
    assert len(moved) / len(keys) < 2 / (len(nodes) + 1)


def test_a_third_deployment_takes_a_third_and_reshuffles_a_little_between_the_old_two():
    # 10,000 business ids, east+west joined by north.
    before, after = HashRing(["east", "west"]), HashRing(["east", "west", "north"])
    keys = [str(biz) for biz in range(10_000)]
    moved = [k for k in keys if before.get_node(k) != after.get_node(k)]
    assert len(moved) == 4209
    assert sum(after.get_node(k) == "north" for k in moved) == 3340
