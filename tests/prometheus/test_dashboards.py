"""Every Grafana panel query and every alert rule expression, run through a real Prometheus
that scraped a real alert flow and a real converge flow on real Kafka and Redis, returns data."""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Iterator

import orjson
import pytest
import yaml

from alarmflow.kafka_tools import ensure_topics, produce
from alarmflow.samples import sample_messages
from alarmflow.services import PrometheusServer, free_port
from bench.converge_throughput import by_dimension, storm
from tests.flows.flowrun import REPO, FlowEnv, bytewax_command, start

pytestmark = pytest.mark.integration

GRAFANA = REPO / "grafana" / "dashboards"
RULES = REPO / "prometheus" / "alerts.yml"


def panel_queries() -> list[tuple[str, str]]:
    """(dashboard/panel, PromQL) for every panel target, Grafana variables filled in."""
    out = []
    for path in sorted(GRAFANA.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                expr = target["expr"].replace("$__rate_interval", "30s").replace("$flow", "alert")
                out.append((f"{path.stem}/{panel['title']}", expr))
    return out


def rule_expressions() -> list[tuple[str, str]]:
    rules = yaml.safe_load(RULES.read_text())
    return [(r["alert"], r["expr"]) for g in rules["groups"] for r in g["rules"]]


@pytest.fixture(scope="module")
def scraped(kafka_broker, redis_server, tmp_path_factory) -> Iterator[PrometheusServer]:
    """An alert flow and a converge flow (tailing) with samples, one dead target, and Prometheus
    scraping all three."""
    run_dir = tmp_path_factory.mktemp("prometheus")
    stem = f"prom{int(time.time())}"
    env = FlowEnv(
        kafka_broker.bootstrap,
        redis_server.url(9),
        f"{stem}.ee",
        {"ALERT": f"{stem}.alert"},
        f"{stem}.dlq",
    )
    env.topics["ACTION"] = f"{stem}.action"
    outputs = [f"{stem}.decisions", f"{stem}.audit"]
    ensure_topics(kafka_broker.bootstrap, [*env.topics.values(), f"{stem}.dlq"], partitions=3)
    ensure_topics(kafka_broker.bootstrap, outputs, partitions=1)
    produce(kafka_broker.bootstrap, f"{stem}.alert", sample_messages(3000, int(time.time())))
    actions = [orjson.dumps(a) for a in storm(400, int(time.time()) - 600)]
    produce(kafka_broker.bootstrap, f"{stem}.action", actions, by_dimension)
    metrics_port, converge_port, dead_port = free_port(), free_port(), free_port()
    shipped = yaml.safe_load((REPO / "prometheus" / "prometheus.yml").read_text())
    job = shipped["scrape_configs"][0]
    job["static_configs"] = [
        {"targets": [f"127.0.0.1:{metrics_port}"], "labels": {"flow": "alert"}},
        {"targets": [f"127.0.0.1:{converge_port}"], "labels": {"flow": "converge"}},
        {"targets": [f"127.0.0.1:{dead_port}"], "labels": {"flow": "stopped"}},
    ]
    shipped["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    shipped["rule_files"] = [str(RULES)]
    config = run_dir / "prometheus.yml"
    config.write_text(yaml.safe_dump(shipped))
    flow = start(
        bytewax_command("flows.alert"),
        env.environ(ALARMFLOW_TAIL="1", ALARMFLOW_METRICS_PORT=str(metrics_port)),
        run_dir / "flow.log",
    )
    converge = start(
        bytewax_command("flows.converge"),
        env.environ(
            ALARMFLOW_TAIL="1",
            ALARMFLOW_METRICS_PORT=str(converge_port),
            ALARMFLOW_DECISION_TOPIC=outputs[0],
            ALARMFLOW_AUDIT_TOPIC=outputs[1],
        ),
        run_dir / "converge.log",
    )
    prometheus = PrometheusServer(free_port(), config, run_dir)
    prometheus.start()
    try:
        time.sleep(4)
        produce(kafka_broker.bootstrap, f"{stem}.alert", sample_messages(3000, int(time.time()), 2))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(
            prometheus.query(q) for _, q in panel_queries()
        ):
            time.sleep(1)
        yield prometheus
    finally:
        for proc in (flow, converge):
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        prometheus.stop()


@pytest.mark.parametrize(("where", "query"), panel_queries(), ids=[w for w, _ in panel_queries()])
def test_every_dashboard_query_returns_data(scraped, where, query):
    assert scraped.query(query), f"{where}: no data for {query}"


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
    deadline = time.monotonic() + 30
    rules = loaded_rules(scraped)
    while rules["AlarmflowFlowDown"]["state"] == "inactive" and time.monotonic() < deadline:
        time.sleep(1)
        rules = loaded_rules(scraped)
    assert set(rules) == {n for n, _ in rule_expressions()}
    assert all(r["health"] == "ok" for r in rules.values()), rules
    assert rules["AlarmflowFlowDown"]["state"] in ("pending", "firing")


def test_the_panel_queries_cover_every_alarmflow_metric():
    names = set(re.findall(r"alarmflow_[a-z_]+", " ".join(q for _, q in panel_queries())))
    families = {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in names}
    exported = {
        "alarmflow_consumed",
        "alarmflow_cleaned",
        "alarmflow_rejected",
        "alarmflow_dropped",
        "alarmflow_written",
        "alarmflow_signals",
        "alarmflow_dlq_produced",
        "alarmflow_redis_batch_seconds",
        "alarmflow_redis_errors",
        "alarmflow_end_to_end_seconds",
        "alarmflow_stage_seconds",
        "alarmflow_stage_items",
        "alarmflow_converge_decisions",
    }
    assert exported - families == {"alarmflow_cleaned"}
