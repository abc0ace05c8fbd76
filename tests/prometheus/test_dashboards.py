"""The shipped ``prometheus/prometheus.yml``, unchanged, scraping real flows on real Kafka and
Redis: an alert flow run as two processes (``alarmflow.launch -p 2``), a converge flow, and one
registered target that is down. Every Grafana panel and variable query and every alert rule
expression returns data from it, and no series carries an ``exported_`` label."""

from __future__ import annotations

import json
import re
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import yaml

from alarmflow.kafka_tools import ensure_topics, produce
from alarmflow.metrics import DEFINED, register_target
from alarmflow.samples import sample_messages
from alarmflow.services import PrometheusServer, consecutive_free_ports, free_port
from bench.converge_throughput import by_dimension, storm
from tests.flows.flowrun import (
    REPO,
    FlowEnv,
    bytewax_command,
    launcher_command,
    start,
    wait_until,
)

pytestmark = pytest.mark.integration

GRAFANA = REPO / "grafana" / "dashboards"
SHIPPED = REPO / "prometheus"
CONFIG = yaml.safe_load((SHIPPED / "prometheus.yml").read_text())
SCRAPE_S = int(CONFIG["global"]["scrape_interval"].removesuffix("s"))
# Grafana's $__rate_interval is at least four scrape intervals.
RATE_INTERVAL = f"{4 * SCRAPE_S}s"
# A variable without "All" takes this value; one with "All" takes its allValue.
PICKED = {"flow": "alert"}
ALERT_PROCESSES = 2
WAIT_S = 20 * SCRAPE_S


def fill(expr: str, variables: dict[str, str]) -> str:
    expr = expr.replace("$__rate_interval", RATE_INTERVAL)
    for name, value in variables.items():
        expr = expr.replace(f"${name}", value)
    return expr


def as_query(definition: str) -> str:
    """A Grafana ``label_values(selector, label)`` variable query as PromQL."""
    selector, label = re.fullmatch(r"label_values\((.+), (\w+)\)", definition).groups()
    return f"group by ({label}) ({selector})"


def dashboard_queries() -> list[tuple[str, str]]:
    """(dashboard/panel or dashboard/$variable, PromQL) for every query, variables filled in."""
    out = []
    for path in sorted(GRAFANA.glob("*.json")):
        dashboard = json.loads(path.read_text())
        variables = {}
        for var in dashboard["templating"]["list"]:
            if var["type"] != "query":
                continue
            query = as_query(fill(var["definition"], variables))
            out.append((f"{path.stem}/${var['name']}", query))
            variables[var["name"]] = var["allValue"] if var["includeAll"] else PICKED[var["name"]]
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                out.append((f"{path.stem}/{panel['title']}", fill(target["expr"], variables)))
    return out


def rule_expressions() -> list[tuple[str, str]]:
    rules = yaml.safe_load((SHIPPED / "alerts.yml").read_text())
    return [(r["alert"], r["expr"]) for g in rules["groups"] for r in g["rules"]]


def shipped_config_dir(run_dir: Path) -> Path:
    """The shipped config and rules, byte for byte, with the empty ``targets/`` directory that
    the config's file discovery reads (relative to the config, as in docker-compose.yml)."""
    etc = run_dir / "etc"
    (etc / "targets").mkdir(parents=True)
    for rule_file in ["prometheus.yml", *CONFIG["rule_files"]]:
        shutil.copyfile(SHIPPED / rule_file, etc / rule_file)
    return etc


@pytest.fixture(scope="module")
def scraped(kafka_broker, redis_server, tmp_path_factory) -> Iterator[PrometheusServer]:
    run_dir = tmp_path_factory.mktemp("prometheus")
    etc = shipped_config_dir(run_dir)
    stem = f"prom{int(time.time())}"
    env = FlowEnv(
        kafka_broker.bootstrap,
        redis_server.url(9),
        f"{stem}.ee",
        {"ALERT": f"{stem}.alert", "ACTION": f"{stem}.action"},
        f"{stem}.dlq",
    )
    outputs = [f"{stem}.decisions", f"{stem}.audit"]
    ensure_topics(kafka_broker.bootstrap, [*env.topics.values(), env.dlq_topic], partitions=3)
    ensure_topics(kafka_broker.bootstrap, outputs, partitions=1)
    produce(kafka_broker.bootstrap, env.topics["ALERT"], sample_messages(3000, int(time.time())))
    actions = [orjson.dumps(a) for a in storm(400, int(time.time()) - 600)]
    produce(kafka_broker.bootstrap, env.topics["ACTION"], actions, by_dimension)
    register_target(etc / "targets", "stopped", f"127.0.0.1:{free_port()}")
    registered = {"ALARMFLOW_TAIL": "1", "ALARMFLOW_METRICS_TARGETS_DIR": str(etc / "targets")}
    alert = start(
        launcher_command(
            "flows.alert", "-p", str(ALERT_PROCESSES), "--base-port", str(consecutive_free_ports())
        ),
        env.environ(**registered, ALARMFLOW_METRICS_PORT=str(consecutive_free_ports())),
        run_dir / "alert.log",
    )
    converge = start(
        bytewax_command("flows.converge"),
        env.environ(
            **registered,
            ALARMFLOW_METRICS_PORT=str(free_port()),
            ALARMFLOW_DECISION_TOPIC=outputs[0],
            ALARMFLOW_AUDIT_TOPIC=outputs[1],
        ),
        run_dir / "converge.log",
    )
    prometheus = PrometheusServer(free_port(), etc / "prometheus.yml", run_dir)
    prometheus.start()
    try:
        wait_until(
            lambda: (
                sum(float(r["value"][1]) for r in prometheus.query("alarmflow_consumed_total"))
                >= 3000
            ),
            "a scrape of the alert flow after the first batch",
            WAIT_S,
        )
        more = sample_messages(3000, int(time.time()), 2)
        produce(kafka_broker.bootstrap, env.topics["ALERT"], more)
        wait_until(
            lambda: all(prometheus.query(q) for _, q in dashboard_queries()),
            "every dashboard query to return data",
            WAIT_S,
        )
        yield prometheus
    finally:
        for proc in (alert, converge):
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        prometheus.stop()


@pytest.mark.parametrize(
    ("where", "query"), dashboard_queries(), ids=[w for w, _ in dashboard_queries()]
)
def test_every_dashboard_query_returns_data(scraped, where, query):
    assert scraped.query(query), f"{where}: no data for {query}"


def test_every_process_of_a_p2_run_is_scraped(scraped):
    up = scraped.query('up{job="alarmflow", flow="alert"}')
    assert len(up) == ALERT_PROCESSES
    assert all(r["value"][1] == "1" for r in up), up
    ports = sorted(int(r["metric"]["instance"].rsplit(":", 1)[1]) for r in up)
    assert ports == list(range(ports[0], ports[0] + ALERT_PROCESSES))
    consumed = scraped.query('sum by (instance) (alarmflow_consumed_total{flow="alert"})')
    assert len(consumed) == ALERT_PROCESSES


def test_no_series_has_an_exported_label(scraped):
    labels = scraped.api("/api/v1/labels")
    assert "flow" in labels
    assert not [label for label in labels if label.startswith("exported_")], labels


def test_every_alarmflow_series_keeps_its_own_flow_label(scraped):
    flows = {
        r["metric"]["flow"] for r in scraped.query("group by (flow) ({__name__=~'alarmflow_.+'})")
    }
    assert flows == {"alert", "converge"}


@pytest.mark.parametrize(
    ("name", "expr"), rule_expressions(), ids=[n for n, _ in rule_expressions()]
)
def test_every_rule_expression_is_accepted(scraped, name, expr):
    scraped.query(expr)


def test_the_flow_down_rule_sees_the_stopped_target(scraped):
    down = dict(rule_expressions())["AlarmflowFlowDown"]
    assert [r["metric"]["flow"] for r in scraped.query(down)] == ["stopped"]


def loaded_rules(prometheus: PrometheusServer) -> dict[str, dict]:
    groups = prometheus.api("/api/v1/rules")["groups"]
    return {r["name"]: r for g in groups for r in g["rules"]}


def test_rules_are_loaded_healthy_and_flow_down_goes_pending(scraped):
    wait_until(
        lambda: loaded_rules(scraped)["AlarmflowFlowDown"]["state"] != "inactive",
        "AlarmflowFlowDown to leave the inactive state",
        WAIT_S,
    )
    rules = loaded_rules(scraped)
    assert set(rules) == {n for n, _ in rule_expressions()}
    assert all(r["health"] == "ok" for r in rules.values()), rules
    assert rules["AlarmflowFlowDown"]["state"] in ("pending", "firing")


def test_the_dashboards_show_every_alarmflow_metric():
    queried = " ".join(q for _, q in dashboard_queries())
    families = {family.name for metric in DEFINED for family in metric.describe()}
    assert {f for f in families if not re.search(rf"\b{f}(_total|_bucket)?\b", queried)} == set()
