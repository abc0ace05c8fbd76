"""The CMDB host table: parsing, lookups and the monitoring-disabled states."""

from __future__ import annotations

import pytest

from alarmflow.config import BUNDLED_HOSTS
from operators.hosts import HostError, load_host_file, parse_host, parse_hosts

HOST = {
    "bk_host_id": 7,
    "bk_host_innerip": "10.0.0.7",
    "bk_cloud_id": "0",
    "bk_biz_id": 2,
    "bk_agent_id": "0:10.0.0.7",
    "bk_state": "运营中[需告警]",
    "topo_link": {
        "module|9": [
            {"bk_obj_id": "module", "bk_inst_id": 9},
            {"bk_obj_id": "set", "bk_inst_id": 5},
            {"bk_obj_id": "biz", "bk_inst_id": 2},
        ],
        "module|10": [
            {"bk_obj_id": "module", "bk_inst_id": 10},
            {"bk_obj_id": "set", "bk_inst_id": 5},
            {"bk_obj_id": "biz", "bk_inst_id": 2},
        ],
    },
}


def test_a_host_has_its_sorted_unique_topo_nodes():
    host = parse_host(HOST)
    assert (host.bk_host_id, host.ip, host.cloud_id, host.bk_biz_id) == (7, "10.0.0.7", 0, 2)
    assert host.topo_nodes == ("biz|2", "module|10", "module|9", "set|5")
    assert not host.ignore_monitoring


@pytest.mark.parametrize(("state", "ignored"), [("备用机", True), ("故障中", True), ("", False)])
def test_standby_testing_and_faulty_hosts_are_not_monitored(state, ignored):
    assert parse_host({**HOST, "bk_state": state}).ignore_monitoring is ignored


def test_lookups_by_id_agent_and_address():
    index = parse_hosts([HOST, {**HOST, "bk_host_id": 8, "bk_cloud_id": 2, "bk_agent_id": ""}])
    assert index.by_id("7").bk_host_id == 7
    assert index.by_agent("0:10.0.0.7").bk_host_id == 7
    assert index.by_address("10.0.0.7", "2").bk_host_id == 8
    assert index.by_address("10.0.0.7", "x") is None
    assert index.by_id(None) is None
    assert index.by_agent("") is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"bk_host_id": "x"}, "'bk_host_id' must be a non-negative integer"),
        ({"bk_host_innerip": 7}, "'bk_host_innerip' must be a string"),
        ({"topo_link": {"m": [{"bk_obj_id": "set"}]}}, "need 'bk_obj_id' and 'bk_inst_id'"),
        ({"topo_link": []}, "'topo_link' must map nodes"),
    ],
)
def test_a_bad_host_names_the_field(change, message):
    with pytest.raises(HostError, match=message):
        parse_host({**HOST, **change})


def test_the_bundled_table_loads(tmp_path):
    assert len(load_host_file(BUNDLED_HOSTS)) == 51
    broken = tmp_path / "hosts.json"
    broken.write_text("{}")
    with pytest.raises(HostError, match="expected a JSON list"):
        load_host_file(broken)
