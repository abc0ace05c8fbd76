"""The CMDB host table that event and data access look hosts up in (bkmonitor's HostManager).

bkmonitor reads hosts from its CMDB cache; alarmflow takes them from a table the deployment
provides (``ALARMFLOW_HOSTS``: a JSON file of host objects in CMDB's shape). A host is found
by ``bk_host_id``, by agent id, or by inner IP and cloud id, as bkmonitor's fullers do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from operators.strategy import read_json_list, whole_number

# bkmonitor's HOST_DISABLE_MONITOR_STATES: standby, testing, faulty.
HOST_DISABLE_MONITOR_STATES = ("备用机", "测试中", "故障中")


class HostError(ValueError):
    """The host table is unusable; the message names the host and the field."""


@dataclass(frozen=True)
class Host:
    bk_host_id: int
    ip: str
    cloud_id: int
    bk_biz_id: int
    agent_id: str = ""
    state: str = ""
    topo_nodes: tuple[str, ...] = ()
    """Every ``"obj|inst"`` node on the host's topology links, sorted, without repeats."""

    @cached_property
    def ignore_monitoring(self) -> bool:
        """bkmonitor's ``host.ignore_monitoring``: the host's state disables monitoring (worked
        out once per host: every strategy clone of every record asks)."""
        return any(state in self.state for state in HOST_DISABLE_MONITOR_STATES)


def _int(obj: Mapping[str, Any], name: str, where: str) -> int:
    return whole_number(obj, name, where, HostError)


def parse_host(obj: Any) -> Host:
    """One host object: ``bk_host_id``, ``bk_host_innerip``, ``bk_cloud_id``, ``bk_biz_id``,
    optional ``bk_agent_id``, ``bk_state`` and ``topo_link`` (``{node: [{bk_obj_id,
    bk_inst_id}, ...]}``, CMDB's path from each module up to the business)."""
    if not isinstance(obj, Mapping):
        raise HostError(f"host must be an object, got {type(obj).__name__}")
    host_id = _int(obj, "bk_host_id", "host")
    where = f"host {host_id}"
    ip = obj.get("bk_host_innerip", "")
    if not isinstance(ip, str):
        raise HostError(f"{where}: 'bk_host_innerip' must be a string, got {ip!r}")
    links = obj.get("topo_link")
    links = {} if links is None else links
    if not isinstance(links, Mapping) or not all(isinstance(p, list) for p in links.values()):
        raise HostError(f"{where}: 'topo_link' must map nodes to lists of topo nodes")
    nodes = set()
    for path in links.values():
        for node in path:
            if not isinstance(node, Mapping) or "bk_obj_id" not in node or "bk_inst_id" not in node:
                raise HostError(f"{where}: topo nodes need 'bk_obj_id' and 'bk_inst_id'")
            nodes.add(f"{node['bk_obj_id']}|{node['bk_inst_id']}")
    return Host(
        bk_host_id=host_id,
        ip=ip,
        cloud_id=_int(obj, "bk_cloud_id", where),
        bk_biz_id=_int(obj, "bk_biz_id", where),
        agent_id=str(obj.get("bk_agent_id") or ""),
        state=str(obj.get("bk_state") or ""),
        topo_nodes=tuple(sorted(nodes)),
    )


class HostIndex:
    """Hosts by id, by agent id and by ``(inner ip, cloud id)``."""

    def __init__(self, hosts: Iterable[Host]) -> None:
        self._by_id: dict[int, Host] = {}
        self._by_agent: dict[str, Host] = {}
        self._by_address: dict[tuple[str, int], Host] = {}
        for host in hosts:
            self._by_id[host.bk_host_id] = host
            if host.agent_id:
                self._by_agent[host.agent_id] = host
            if host.ip:
                self._by_address[(host.ip, host.cloud_id)] = host

    def __len__(self) -> int:
        return len(self._by_id)

    def by_id(self, host_id: Any) -> Host | None:
        try:
            return self._by_id.get(int(host_id))
        except (TypeError, ValueError):
            return None

    def by_agent(self, agent_id: Any) -> Host | None:
        return self._by_agent.get(str(agent_id)) if agent_id else None

    def by_address(self, ip: Any, cloud_id: Any) -> Host | None:
        try:
            return self._by_address.get((str(ip), int(cloud_id)))
        except (TypeError, ValueError):
            return None


def parse_hosts(objs: Sequence[Any]) -> HostIndex:
    return HostIndex(parse_host(obj) for obj in objs)


def load_host_file(path: str | Path) -> HostIndex:
    """Hosts from a JSON file holding a list of host objects."""
    return parse_hosts(read_json_list(path, "hosts", HostError))
