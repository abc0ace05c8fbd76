"""Metric declarations and the file-discovery targets a process registers."""

from __future__ import annotations

import json
import logging
import socket

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from alarmflow import metrics
from alarmflow.config import ConfigError, load_settings
from alarmflow.metrics import (
    DEFINED,
    Endpoint,
    make_targets_dir,
    observe_all,
    register_target,
    scrape_target,
    serve,
)


def test_every_metric_is_an_alarmflow_counter_histogram_or_gauge_with_a_help_text():
    for metric in DEFINED:
        [family] = metric.describe()
        assert family.name.startswith("alarmflow_")
        assert isinstance(metric, Counter | Histogram | Gauge)
        assert family.documentation.endswith(".")
    assert len({m.describe()[0].name for m in DEFINED}) == len(DEFINED)


def test_a_target_is_the_listening_address_or_this_host_when_listening_everywhere():
    assert scrape_target("127.0.0.1", 9109) == "127.0.0.1:9109"
    assert scrape_target("0.0.0.0", 9108) == f"{socket.gethostname()}:9108"
    assert scrape_target("::", 9108) == f"{socket.gethostname()}:9108"


def test_a_registered_target_is_one_file_sd_entry_labelled_with_its_flow(tmp_path):
    directory = tmp_path / "targets"
    path = register_target(directory, "alert", "alert:9109")
    assert path == directory / "alert-alert-9109.json"
    entry = {"targets": ["alert:9109"], "labels": {"flow": "alert"}}
    assert json.loads(path.read_text()) == [entry]
    assert [p.name for p in directory.iterdir()] == [path.name]


def test_a_port_beyond_65535_after_the_process_offset_is_logged_and_the_flow_runs_on(
    monkeypatch, caplog
):
    monkeypatch.setattr(metrics, "_served", False)
    monkeypatch.setenv("BYTEWAX_PROCESS_ID", "1")
    with caplog.at_level("ERROR", logger="alarmflow.metrics"):
        serve(Endpoint("127.0.0.1", 65535), "incident")
    assert caplog.messages == [
        "metrics endpoint on port 65536 not started: bind(): port must be 0-65535."
    ]


def test_the_targets_directory_is_optional():
    assert load_settings({}).metrics_targets_dir is None
    settings = load_settings({"ALARMFLOW_METRICS_TARGETS_DIR": "/srv/prometheus/targets"})
    assert str(settings.metrics_targets_dir) == "/srv/prometheus/targets"


def test_the_targets_directory_is_made_at_start_or_refused_in_one_line(tmp_path):
    make_targets_dir(Endpoint("127.0.0.1", 9108, tmp_path / "made" / "targets"))
    assert (tmp_path / "made" / "targets").is_dir()
    a_file = tmp_path / "targets.json"
    a_file.write_text("[]")
    make_targets_dir(Endpoint("127.0.0.1", 0, a_file))
    with pytest.raises(ConfigError) as error:
        make_targets_dir(Endpoint("127.0.0.1", 9108, a_file))
    assert str(error.value) == (
        f"ALARMFLOW_METRICS_TARGETS_DIR='{a_file}': expected a directory, "
        "or a path where one can be made (File exists)"
    )


def test_a_target_that_cannot_be_registered_is_logged_not_raised(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(metrics, "_served", False)
    monkeypatch.setattr(metrics, "start_http_server", lambda port, addr: None)
    a_file = tmp_path / "targets.json"
    a_file.write_text("[]")

    with caplog.at_level(logging.ERROR, "alarmflow.metrics"):
        serve(Endpoint("127.0.0.1", 9108, a_file), "incident")

    [record] = caplog.records
    assert record.getMessage().startswith("metrics target 127.0.0.1:9108 not registered: ")


def test_observing_a_batch_at_once_counts_what_observing_each_value_counts():
    values = [0.0, 0.0005, 0.001, 0.0011, 0.005, 0.2, 0.25, 7.0, 299.0, 300.0, 301.0, 1e9]
    registry = CollectorRegistry()
    buckets = (0.001, 0.005, 0.25, 300)
    one = Histogram("one_seconds", "each", ["flow"], buckets=buckets, registry=registry)
    batch = Histogram("batch_seconds", "batched", ["flow"], buckets=buckets, registry=registry)
    for value in values:
        one.labels("f").observe(value)
    observe_all(batch.labels("f"), values)
    observe_all(batch.labels("f"), [])

    def samples(name: str) -> list[tuple[str, dict, float]]:
        family = next(m for m in registry.collect() if m.name == name)
        return [(s.name.removeprefix(name), s.labels, s.value) for s in family.samples]

    assert [s for s in samples("batch_seconds") if not s[0].endswith("_created")] == [
        s for s in samples("one_seconds") if not s[0].endswith("_created")
    ]
