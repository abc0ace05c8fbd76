"""bkmonitor's TargetCondition as a scenario table: which dimensions an item's target keeps."""

from __future__ import annotations

import pytest

from operators.targets import target_match

HOST = {"bk_target_ip": "10.0.0.7", "bk_target_cloud_id": 0, "bk_host_id": 7}
TOPO = {**HOST, "bk_topo_node": ["biz|2", "module|9", "set|5"]}


def cond(field: str, values: list, method: str = "eq") -> dict:
    return {"field": field, "method": method, "value": values}


@pytest.mark.parametrize(
    ("target", "dims", "kept"),
    [
        ([], HOST, True),
        ([[]], HOST, True),
        ([[cond("ip", [{"ip": "10.0.0.7", "bk_cloud_id": 0}])]], HOST, True),
        ([[cond("ip", [{"ip": "10.0.0.7", "bk_cloud_id": 2}])]], HOST, False),
        ([[cond("bk_target_ip", [{"bk_host_id": 7}])]], HOST, True),
        ([[cond("ip", [{"bk_host_id": 8}], "neq")]], HOST, True),
        ([[cond("ip", [{"bk_host_id": 8}])]], {"other": 1}, True),
        ([[cond("host_topo_node", [{"bk_obj_id": "set", "bk_inst_id": 5}])]], TOPO, True),
        ([[cond("host_topo_node", [{"bk_obj_id": "set", "bk_inst_id": 6}])]], TOPO, False),
        ([[cond("host_topo_node", [{"bk_obj_id": "set", "bk_inst_id": 5}])]], HOST, False),
        (
            [
                [cond("ip", [{"bk_host_id": 8}])],
                [cond("host_topo_node", [{"bk_obj_id": "module", "bk_inst_id": 9}])],
            ],
            TOPO,
            True,
        ),
        (
            [
                [
                    cond("ip", [{"bk_host_id": 7}]),
                    cond("host_topo_node", [{"bk_obj_id": "module", "bk_inst_id": 10}]),
                ]
            ],
            TOPO,
            False,
        ),
    ],
    ids=[
        "no target",
        "empty group",
        "ip and cloud",
        "other cloud",
        "host id",
        "neq other host",
        "no ip in data: skipped",
        "topo node",
        "other topo node",
        "no topo in data",
        "second OR group",
        "AND group, one fails",
    ],
)
def test_target_match(target, dims, kept):
    assert target_match(target, dims) is kept
