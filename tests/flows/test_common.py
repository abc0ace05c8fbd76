"""Building blocks of flows/common.py, run in-process with Bytewax's testing source and sink,
and the start of a flow run by ``bytewax.run``."""

from __future__ import annotations

import os
import subprocess

import bytewax.operators as op
import orjson
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main
from prometheus_client import REGISTRY

from alarmflow.config import load_settings
from flows.common import flow_from_env, load_hosts, load_strategies, shard_by_business
from operators.hashring import HashRing
from operators.targets import load_dynamic_groups
from tests.flows.flowrun import REPO, RUN_TIMEOUT_S, bytewax_command

NODES = ("node-a", "node-b", "node-c")
EVENTS = [{"event_id": f"e{biz}", "bk_biz_id": biz} for biz in range(1, 31)]


def sharded(flow_name: str, **environ: str) -> list[dict]:
    settings = load_settings(environ)
    flow = Dataflow("shard_test")
    events = op.input("in", flow, TestingSource(EVENTS, batch_size=10))
    out: list[dict] = []
    mine = shard_by_business("shard", events, settings, lambda e: e["bk_biz_id"], flow_name)
    op.output("out", mine, TestingSink(out))
    run_main(flow)
    return out


def dropped(flow_name: str) -> float:
    labels = {"flow": flow_name, "reason": "other_shard"}
    return REGISTRY.get_sample_value("alarmflow_dropped_total", labels) or 0.0


def test_without_a_ring_every_record_passes():
    assert sharded("shard_off") == EVENTS
    assert dropped("shard_off") == 0


def test_each_deployment_keeps_the_businesses_it_owns_and_counts_the_rest():
    ring = HashRing(NODES)
    kept = {}
    for node in NODES:
        environ = {"ALARMFLOW_HASH_RING_NODES": ",".join(NODES), "ALARMFLOW_HASH_RING_NODE": node}
        kept[node] = sharded(f"shard_{node}", **environ)
        assert [e["bk_biz_id"] for e in kept[node]] == [
            e["bk_biz_id"] for e in EVENTS if ring.get_node(str(e["bk_biz_id"])) == node
        ]
        assert dropped(f"shard_{node}") == len(EVENTS) - len(kept[node])
    assert sorted(e["bk_biz_id"] for part in kept.values() for e in part) == list(range(1, 31))
    assert all(kept.values()), "30 businesses over 3 nodes should give each node some"


BAD_STRATEGY = {
    "id": 101,
    "bk_biz_id": 2,
    "items": [{"id": 1, "query_configs": [{"agg_condition": "abc"}]}],
}


@pytest.mark.parametrize(
    ("setting", "table", "load", "problem"),
    [
        (
            "ALARMFLOW_STRATEGIES",
            [BAD_STRATEGY],
            load_strategies,
            "strategy 101: 'agg_condition' must be a list of objects, got 'abc'",
        ),
        ("ALARMFLOW_STRATEGIES", {}, load_strategies, "expected a JSON list of strategies"),
        ("ALARMFLOW_HOSTS", [{"bk_host_id": "x"}], load_hosts, "host: 'bk_host_id' must be"),
        (
            "ALARMFLOW_DYNAMIC_GROUPS",
            [],
            lambda settings: load_dynamic_groups(settings.dynamic_groups),
            "dynamic groups must be an object of group id -> group",
        ),
    ],
)
def test_an_unusable_table_is_one_config_line_naming_its_setting(
    monkeypatch, capsys, tmp_path, setting, table, load, problem
):
    path = tmp_path / "table.json"
    path.write_bytes(orjson.dumps(table))
    monkeypatch.setenv(setting, str(path))
    monkeypatch.setattr("alarmflow.logs.configure", lambda level: None)
    with pytest.raises(SystemExit) as exit_:
        flow_from_env(load)
    assert exit_.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"alarmflow: config error: {setting}={path}: {problem}")


def start_refused(module: str, env: dict[str, str]) -> str:
    """``python -m bytewax.run module`` under ``env``: it must exit 2 with one line on stderr,
    which is returned."""
    done = subprocess.run(
        bytewax_command(module),
        env=dict(env, PYTHONPATH=str(REPO)),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.splitlines()
    return line


@pytest.mark.integration
@pytest.mark.parametrize(
    ("module", "setting", "topic"),
    [
        ("flows.alert", "ALARMFLOW_ALERT_TOPICS", "missing.topic"),
        ("flows.alert", "ALARMFLOW_DLQ_TOPIC", "missing"),
        ("flows.converge", "ALARMFLOW_AUDIT_TOPIC", "missing.audit"),
    ],
)
def test_a_topic_the_flow_uses_missing_on_kafka_stops_its_start_in_one_line(
    flow_env, module, setting, topic
):
    """Checked before Bytewax builds the flow: no panic, no traceback."""
    env = flow_env.environ(**{setting: topic}, ALARMFLOW_ACTION_TOPICS=flow_env.topics["ALERT"])
    line = start_refused(module, env)
    assert line.startswith("alarmflow: cannot start: Kafka at ")
    assert f"'{topic}'" in line.split("no topic named ", 1)[1]


def test_a_metrics_targets_directory_that_cannot_be_made_stops_the_start_in_one_line(tmp_path):
    a_file = tmp_path / "targets.json"
    a_file.write_text("[]")
    env = {
        "PATH": os.environ["PATH"],
        "ALARMFLOW_METRICS_PORT": "29108",
        "ALARMFLOW_METRICS_TARGETS_DIR": str(a_file),
    }
    line = start_refused("flows.incident", env)
    assert line.startswith(f"alarmflow: config error: ALARMFLOW_METRICS_TARGETS_DIR='{a_file}'")
