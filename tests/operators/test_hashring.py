"""The ring against bkmonitor's own definition, transcribed below from
``bkmonitor/alarm_backends/management/hashring.py`` (``HashRing.__init__``, ``_hash``,
``get_node``) with nodes weighted 1, as ``alarm_backends/management/base/dispatch.py``
``DefaultDispatchMixin.dispatch_all_hosts`` builds it (``{host: 1 for host in hosts}``). Expected
owners are computed by that transcription, never copied from ``operators/hashring.py``."""

from bisect import bisect_left
from collections import Counter
from hashlib import md5

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.hashring import HashRing, Shard, ring_point

NODES = ["node-a", "node-b", "node-c"]


class BkmonitorRing:
    """bkmonitor's ``HashRing({node: 1, ...}, num_vnodes=2 ** 16)``. Its nodes come in Consul's
    listing order, which is sorted; a point two nodes share belongs to the later one, and stays
    in the sorted point list twice."""

    def __init__(self, nodes: list[str], num_vnodes: int = 2**16) -> None:
        weights = {node: 1 for node in sorted(nodes)}
        multiple = max(int(num_vnodes // sum(weights.values())), 1)
        self.vnodes = multiple * sum(weights.values())
        self.ring: list[int] = []
        self.hash2node: dict[int, str] = {}
        for node in weights:
            for i in range(multiple):
                h = self._hash(str(node) + str(i))
                self.ring.append(h)
                self.hash2node[h] = node
        self.ring.sort()

    @staticmethod
    def _hash(key: object) -> int:
        return int(md5(str(key).encode("utf-8")).hexdigest(), 16) % (2**32)

    def get_node(self, key: object) -> str:
        n = bisect_left(self.ring, self._hash(key)) % self.vnodes
        return self.hash2node[self.ring[n]]


def test_points_are_md5_mod_2_32():
    assert ring_point("node-a0") == int(md5(b"node-a0").hexdigest(), 16) % 2**32


def test_every_node_gets_65536_over_n_points():
    assert HashRing(NODES).replicas == 65536 // 3
    assert HashRing(["only"]).replicas == 65536


def test_every_business_goes_where_bkmonitor_sends_it():
    ours, theirs = HashRing(NODES), BkmonitorRing(NODES)
    for key in [*range(5000), *map(str, range(5000)), "kafka:9092|0bkmonitor_1001|3"]:
        assert ours.get_node(key) == theirs.get_node(key), key


def test_keys_past_the_last_point_wrap_to_the_first():
    ring, theirs = HashRing(NODES), BkmonitorRing(NODES)
    past_the_end = next(k for k in range(10**6) if ring_point(str(k)) > ring.points[-1])
    assert ring.get_node(past_the_end) == theirs.hash2node[theirs.ring[0]]


def test_a_shared_point_belongs_to_the_later_node_and_the_ring_keeps_its_length():
    # host-1 replica 8853 and host-1001 replica 24095 hash to the same point.
    nodes = ["host-1001", "host-1"]
    shared = int(md5(b"host-18853").hexdigest(), 16) % 2**32
    assert shared == int(md5(b"host-100124095").hexdigest(), 16) % 2**32
    ring, theirs = HashRing(nodes), BkmonitorRing(nodes)
    assert ring.owner[shared] == theirs.hash2node[shared] == "host-1001"
    assert len(ring.points) == len(theirs.ring) == 65536
    just_before = next(k for k in range(10**6) if ring.point_of(k) == shared)
    assert ring.get_node(just_before) == theirs.get_node(just_before) == "host-1001"


def test_an_empty_ring_is_refused():
    with pytest.raises(ValueError, match="at least one node"):
        HashRing([])


def test_a_shard_owns_its_keys_and_only_them():
    shards = [Shard(NODES, node) for node in NODES]
    for biz in range(50):
        assert sum(shard.owns(biz) for shard in shards) == 1
    theirs = BkmonitorRing(NODES)
    by_node = dict(zip(NODES, shards, strict=True))
    assert all(by_node[theirs.get_node(biz)].owns(biz) for biz in range(50))


def test_a_shard_must_be_a_node_of_the_ring():
    with pytest.raises(ValueError, match="'node-x' is not one of the ring's nodes"):
        Shard(NODES, "node-x")


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
    # to the joining node, off a point that no longer exists, or off a point two nodes shared
    # whose later owner dropped it (bkmonitor's ring does all three).
    if joining in nodes:
        return
    before, after = HashRing(nodes), HashRing([*nodes, joining])
    shared = {point for point, count in Counter(before.points).items() if count > 1}
    keys = range(2000)
    moved = [key for key in keys if before.get_node(key) != after.get_node(key)]
    for key in moved:
        point = before.point_of(key)
        assert after.get_node(key) == joining or point not in after.owner or point in shared
    assert len(moved) / len(keys) < 2 / (len(nodes) + 1)


def test_a_third_deployment_moves_exactly_the_businesses_bkmonitor_moves():
    keys = [str(biz) for biz in range(10_000)]
    before, after = HashRing(["east", "west"]), HashRing(["east", "west", "north"])
    theirs_before, theirs_after = (
        BkmonitorRing(["east", "west"]),
        BkmonitorRing(["east", "west", "north"]),
    )
    moved = {k: after.get_node(k) for k in keys if before.get_node(k) != after.get_node(k)}
    assert moved == {
        k: theirs_after.get_node(k)
        for k in keys
        if theirs_before.get_node(k) != theirs_after.get_node(k)
    }
    # Besides the keys north takes, some move between east and west: their points are gone.
    assert set(moved.values()) == {"east", "west", "north"}
