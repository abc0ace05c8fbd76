"""The shipped Prometheus config and alerting rules: valid, and each rule fires when it should."""

from __future__ import annotations

from pathlib import Path

import yaml

from alarmflow.services import promtool

PROMETHEUS = Path(__file__).resolve().parents[2] / "prometheus"


def test_config_and_rules_are_valid():
    assert "SUCCESS" in promtool("check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert "5 rules found" in promtool("check", "rules", str(PROMETHEUS / "alerts.yml"))


def test_every_rule_fires_in_its_scenario_and_not_outside_it():
    promtool("test", "rules", str(PROMETHEUS / "alerts_test.yml"))


def test_every_rule_has_a_scenario_where_it_fires():
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    names = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    tests = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())["tests"]
    fired = {
        case["alertname"]
        for test in tests
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert names == fired
