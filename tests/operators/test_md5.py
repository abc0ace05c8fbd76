"""bkmonitor's count_md5: published test vectors, str() semantics, order independence."""

from __future__ import annotations

from hashlib import md5

import pytest
from hypothesis import given
from hypothesis import strategies as st

from operators import _native
from operators.md5 import count_md5
from tests import main_33cd407

EVENT_DIMS = {
    "bk_host_id": 2,
    "bk_target_cloud_id": 0,
    "bk_target_ip": "127.0.0.1",
    "bk_topo_node": ["biz|2", "module|9", "set|5", "test|2"],
}


@pytest.mark.parametrize(
    ("value", "digest"),
    [
        (
            {"bk_target_ip": "127.0.0.1", "bk_target_cloud_id": "0"},
            "ac6847eefd664275c7b3693829f68bab",
        ),
        (EVENT_DIMS, "990d2ce882caacb380df66462c847d9a"),
        ({**EVENT_DIMS, "agent_version": "v1"}, "b3a0d98506ed48e358e9176dbe4d23c4"),
        ({**EVENT_DIMS, "agent_version": "v2"}, "8043faacbbd950898164a946faabe72c"),
    ],
)
def test_bkmonitor_test_vectors(value, digest):
    assert count_md5(value) == digest


def test_a_list_is_the_md5_of_str_of_its_sorted_member_digests():
    members = [md5(b"b").hexdigest(), md5(b"a").hexdigest()]
    assert count_md5(["b", "a"]) == md5(str(sorted(members)).encode()).hexdigest()


@pytest.mark.parametrize(
    ("left", "right"), [(0, "0"), (None, "None"), (1.0, "1.0"), (True, "True")]
)
def test_python_str_semantics(left, right):
    assert count_md5(left) == count_md5(right)


def test_a_callable_hashes_by_name():
    assert count_md5(len) == md5(b"len").hexdigest()


json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=8)
json_dicts = st.dictionaries(st.text(max_size=6), json_scalars, max_size=6)


@given(json_dicts)
def test_dict_digest_ignores_insertion_order(data):
    assert count_md5(dict(reversed(list(data.items())))) == count_md5(data)


@given(st.lists(json_scalars, max_size=8), st.randoms())
def test_list_digest_ignores_member_order(values, rng):
    shuffled = list(values)
    rng.shuffle(shuffled)
    assert count_md5(shuffled) == count_md5(values)


@given(st.dictionaries(st.text(max_size=4), st.lists(json_scalars, max_size=4) | json_dicts))
def test_digest_is_stable(data):
    assert count_md5(data) == count_md5(data)


any_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["zabbix", "ABNORMAL", "2", "HOST", "0", "x" * 200])
)
nested = st.recursive(
    any_scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=6) | st.sampled_from(["a", "b"]), inner, max_size=5)
    ),
    max_leaves=24,
)


@given(nested)
def test_same_digest_as_main_before_the_speed_up(value):
    """Today's count_md5 against main's (commit 33cd407) frozen in tests/main_33cd407.py."""
    assert count_md5(value) == main_33cd407.count_md5(value)


@given(st.text() | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
def test_the_c_md5_is_rfc_1321_s_on_texts_across_block_boundaries(text):
    # A text's UTF-8 of any length, so that its padding fills one block or spills into a second.
    assert _native.count_md5(text) == md5(text.encode("utf8")).hexdigest()


@pytest.mark.parametrize("size", [0, 1, 55, 56, 63, 64, 65, 119, 120, 127, 128, 1000])
def test_the_c_md5_at_each_padding_edge(size):
    assert _native.count_md5("a" * size) == md5(b"a" * size).hexdigest()


class Label(str):
    def __str__(self) -> str:
        return "label"


@pytest.mark.parametrize(
    "value",
    [Label("x"), [1, Label("x")], {"k": len}, (len, 1), {"k": {"n": Label("y")}}, object],
)
def test_types_the_c_twin_leaves_to_python(value):
    assert _native.count_md5(value) is None
    assert count_md5(value) == main_33cd407.count_md5(value)


def test_a_value_nested_past_the_recursion_limit_is_refused_as_in_python():
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(RecursionError):
        count_md5(deep)
