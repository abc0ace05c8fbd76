"""docker-compose.yml, read (Docker does not run here): every service, port, volume and file it
names exists and agrees with the code's configuration, the Prometheus config and Grafana's."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from alarmflow.config import ACCESS_TYPES, BUNDLED_STRATEGIES, load_settings

REPO = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
BUILT = {name: s for name, s in SERVICES.items() if s.get("build") == "."}


def known_variables() -> set[str]:
    source = (REPO / "alarmflow" / "config.py").read_text()
    source += (REPO / "alarmflow" / "metrics.py").read_text()
    names = set(re.findall(r"ALARMFLOW_[A-Z_]+[A-Z]", source))
    return names | {f"ALARMFLOW_{kind}_TOPICS" for kind in ACCESS_TYPES}


def module_exists(module: str) -> bool:
    path = REPO / module.replace(".", "/")
    return path.with_suffix(".py").is_file() or (path / "__main__.py").is_file()


def test_images_are_pinned_and_kafka_matches_the_brokers_we_test_with():
    pom = (REPO / "services" / "kafka" / "pom.xml").read_text()
    kafka_version = re.search(r"<kafka.version>(.+)</kafka.version>", pom).group(1)
    for name, service in SERVICES.items():
        if "image" in service:
            assert ":" in service["image"] and not service["image"].endswith(":latest"), name
    assert SERVICES["kafka"]["image"] == f"apache/kafka:{kafka_version}"


def test_built_services_run_modules_that_exist_and_the_dockerfile_copies_real_paths():
    dockerfile = (REPO / "Dockerfile").read_text()
    for source in re.findall(r"^COPY (\S+)", dockerfile, flags=re.M):
        assert (REPO / source).exists(), source
    for name, service in BUILT.items():
        command = service["command"]
        assert command[:2] == ["python", "-m"], name
        assert module_exists(command[2]), f"{name}: {command[2]}"
        flows = [arg for arg in command if arg.startswith("flows.")]
        assert all(module_exists(flow) for flow in flows), name


def test_flow_environment_names_real_variables_with_valid_values():
    for name, service in BUILT.items():
        env = {k: str(v) for k, v in service["environment"].items()}
        assert set(env) <= known_variables(), f"{name}: unknown {set(env) - known_variables()}"
        settings = load_settings(env)
        assert settings.kafka_bootstrap.split(":")[0] in SERVICES
        assert settings.redis_url.split("//")[1].split(":")[0] in SERVICES
        assert settings.strategies == str(BUNDLED_STRATEGIES)
    assert "ENV ALARMFLOW_METRICS_ADDR=0.0.0.0" in (REPO / "Dockerfile").read_text()


def test_every_bind_mount_exists_and_named_volumes_are_declared():
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), f"{name}: {source}"
            else:
                assert source in COMPOSE["volumes"], f"{name}: {source}"


def test_flows_with_recovery_mount_a_volume_at_their_recovery_directory():
    for name, service in BUILT.items():
        if "-r" in service["command"]:
            directory = service["command"][service["command"].index("-r") + 1]
            assert any(v.endswith(f":{directory}") for v in service["volumes"]), name


def mounted(service: str, container_path: str) -> Path:
    for volume in SERVICES[service]["volumes"]:
        source, target = volume.split(":")[:2]
        if container_path == target or container_path.startswith(target + "/"):
            return REPO / source / container_path[len(target) :].lstrip("/")
    raise AssertionError(f"{service} does not mount {container_path}")


def volume_at(service: str, container_path: str) -> str:
    """The named volume ``service`` mounts at ``container_path``."""
    for volume in SERVICES[service]["volumes"]:
        source, target = volume.split(":")[:2]
        if target == container_path and source in COMPOSE["volumes"]:
            return source
    raise AssertionError(f"{service} mounts no named volume at {container_path}")


def test_prometheus_discovers_every_flow_process_its_service_registers():
    config_path = re.search(r"--config.file=(\S+)", " ".join(SERVICES["prometheus"]["command"]))
    config_dir = Path(config_path.group(1)).parent
    config = yaml.safe_load(mounted("prometheus", config_path.group(1)).read_text())
    for rule_file in config["rule_files"]:
        assert (mounted("prometheus", str(config_dir)) / rule_file).is_file()
    [job] = config["scrape_configs"]
    assert job["honor_labels"] is True
    [pattern] = [f for sd in job["file_sd_configs"] for f in sd["files"]]
    targets_dir = str(config_dir / Path(pattern).parent)
    shared = volume_at("prometheus", targets_dir)
    flow_services = {
        n for n, s in BUILT.items() if any(a.startswith("flows.") for a in s["command"])
    }
    assert flow_services == {n for n in BUILT if n != "feed"}
    for name in flow_services:
        settings = load_settings({k: str(v) for k, v in BUILT[name]["environment"].items()})
        assert volume_at(name, str(settings.metrics_targets_dir)) == shared, name
        # A process registers hostname:port; the hostname is the service name Docker resolves.
        assert BUILT[name]["hostname"] == name


def test_grafana_provisions_the_dashboards_and_the_datasource_they_use():
    provisioning = mounted("grafana", "/etc/grafana/provisioning")
    provider = yaml.safe_load((provisioning / "dashboards" / "alarmflow.yml").read_text())
    dashboards = mounted("grafana", provider["providers"][0]["options"]["path"])
    assert sorted(p.name for p in dashboards.glob("*.json")) == [
        "converge.json",
        "flow.json",
        "overview.json",
    ]
    datasource = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    source = datasource["datasources"][0]
    assert source["url"] == "http://prometheus:9090"
    assert "9090:9090" in SERVICES["prometheus"]["ports"]
    assert source["type"] == "prometheus" and source["isDefault"] is True
    for path in dashboards.glob("*.json"):
        dashboard = json.loads(path.read_text())
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == source["type"]
        for panel in dashboard["panels"]:
            for used in [panel, *panel["targets"]]:
                assert used["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, (
                    f"{path.name}: {panel['title']}"
                )
    home = SERVICES["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert mounted("grafana", home).is_file()


@pytest.mark.parametrize("service", sorted(BUILT))
def test_built_services_wait_for_kafka(service):
    assert SERVICES[service]["depends_on"]["kafka"]["condition"] == "service_healthy"
