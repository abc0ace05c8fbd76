"""bkmonitor's TargetCondition as a scenario table: which dimensions an item's target keeps.

Every expectation follows ``bkmonitor/utils/range/target.py`` (``TargetCondition.
load_target_condition`` and ``is_match``) and ``alarm_backends/core/control/item.py``
(``Item.target_condition_obj``: no target, or an empty first group, means no condition)."""

from __future__ import annotations

import pytest

from operators.targets import (
    DynamicGroupError,
    DynamicGroups,
    load_dynamic_groups,
    parse_dynamic_groups,
    target_match,
)

HOST = {"bk_target_ip": "10.0.0.7", "bk_target_cloud_id": 0, "bk_host_id": 7}
TOPO = {**HOST, "bk_topo_node": ["biz|2", "module|9", "set|5"]}
SERVICE = {**TOPO, "bk_target_service_instance_id": "31"}
GROUPS = parse_dynamic_groups(
    {
        "g-hosts": {"bk_obj_id": "host", "bk_inst_ids": [7, 8]},
        "g-other": {"bk_obj_id": "host", "bk_inst_ids": [9]},
        "g-empty": {"bk_obj_id": "host", "bk_inst_ids": []},
        "g-sets": {"bk_obj_id": "set", "bk_inst_ids": [7]},
    }
)


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
        # load_target_condition: an ip value with both a host id and an address gives both keys
        ([[cond("ip", [{"bk_host_id": 99, "ip": "10.0.0.7", "bk_cloud_id": 0}])]], HOST, True),
        # is_match: topo nodes present but empty -> break, whatever the method
        (
            [[cond("host_topo_node", [{"bk_obj_id": "set", "bk_inst_id": 6}], "neq")]],
            {**HOST, "bk_topo_node": []},
            False,
        ),
        ([[cond("host_topo_node", [{"bk_obj_id": "set", "bk_inst_id": 6}], "neq")]], TOPO, True),
        # service_topo_node is a topo field too (field.split("_", 1)[1] == "topo_node")
        ([[cond("service_topo_node", [{"bk_obj_id": "module", "bk_inst_id": 9}])]], TOPO, True),
        # service instances: compared by id; skipped when the record has none
        ([[cond("service_instance_id", [{"service_instance_id": 31}])]], SERVICE, True),
        ([[cond("bk_target_service_instance_id", [{"service_instance_id": 32}])]], SERVICE, False),
        ([[cond("service_instance_id", [{"service_instance_id": 32}])]], TOPO, True),
        # a field that gives no keys is left out; a target left with nothing matches nothing
        ([[cond("bk_biz_id", [{"bk_biz_id": 2}])]], HOST, False),
        (
            [[cond("bk_biz_id", [{"bk_biz_id": 2}]), cond("ip", [{"bk_host_id": 7}])]],
            HOST,
            True,
        ),
        # upper-case field and method are read lower-cased
        ([[cond("IP", [{"bk_host_id": 8}], "NEQ")]], HOST, True),
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
        "host id and address both kept",
        "empty topo fails even for neq",
        "topo neq",
        "service topo node",
        "service instance",
        "other service instance",
        "no service instance in data: skipped",
        "field without keys: nothing left",
        "field without keys beside an ip",
        "case of field and method",
    ],
)
def test_target_match(target, dims, kept):
    assert target_match(target, dims) is kept


@pytest.mark.parametrize(
    ("groups", "host_id", "method", "kept"),
    [
        (["g-hosts"], 7, "eq", True),
        (["g-other"], 7, "eq", False),
        (["g-other", "g-hosts"], 8, "eq", True),
        (["g-other"], 7, "neq", True),
        (["g-empty"], 7, "eq", False),
        (["g-empty"], 7, "neq", True),
        (["g-sets"], 7, "eq", False),
        (["unknown"], 7, "eq", False),
    ],
    ids=[
        "member",
        "not a member",
        "member of the second group",
        "neq not a member",
        "group without hosts: key 0 matches nothing",
        "group without hosts, neq",
        "set groups take no part",
        "unknown group",
    ],
)
def test_dynamic_group(groups, host_id, method, kept):
    """``load_target_condition``'s ``dynamic_group`` branch: host ids of the host groups (or
    the int 0 when there are none), matched as ``bk_target_ip`` by ``bk_host_id``."""
    target = [[cond("dynamic_group", [{"dynamic_group_id": g} for g in groups], method)]]
    dims = {**HOST, "bk_host_id": host_id}
    assert target_match(target, dims, GROUPS) is kept


def test_dynamic_groups_need_the_table():
    target = [[cond("dynamic_group", [{"dynamic_group_id": "g-hosts"}])]]
    assert target_match(target, HOST) is False
    assert target_match(target, HOST, DynamicGroups({})) is False


def test_the_dynamic_group_table_is_read_from_a_file(tmp_path):
    table = tmp_path / "groups.json"
    table.write_text('{"g1": {"bk_obj_id": "host", "bk_inst_ids": [7]}}')
    assert load_dynamic_groups(table).host_keys(["g1"]) == {"7"}
    assert load_dynamic_groups("") == DynamicGroups({})
    for bad in ("[]", '{"g1": {"bk_inst_ids": 7}}', "{not json"):
        table.write_text(bad)
        with pytest.raises(DynamicGroupError):
            load_dynamic_groups(table)
