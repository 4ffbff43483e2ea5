"""Issue 18: deploy/compose.yml (two gateways on Kafka in KRaft mode, Prometheus with the alert
rules, Grafana with the dashboard) and deploy/compose.single.yml (one gateway on SQLite) checked
statically, since no Docker engine runs here:

* against the Compose Specification JSON schema, validated with the ``jsonschema`` library. The
  schema is not copied into this repository: it is the one Debian's docker-compose package ships
  (``compose/config/compose_spec.json``, Apache-2.0, from github.com/compose-spec/compose-spec;
  scripts/install-system-deps.sh installs the package);
* with ``docker-compose config`` from that package, which resolves anchors, paths and secrets;
* with the project's own checks: every mounted file exists, host ports are unique and loopback,
  every gateway keeps its state on its own volume under a read-only root, has a health check and a
  stop grace that covers the drain, and the settings file loads as each gateway would see it;
* ``promtool check config`` on the stack's Prometheus configuration, with the alert rules beside it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.ship.helpers import DEPLOY, ROOT, seconds, stop_budget

SCHEMA = Path("/usr/lib/python3/dist-packages/compose/config/compose_spec.json")
FILES = ["compose.yml", "compose.single.yml"]


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / name).read_text(encoding="utf-8"))
    return data


def gateways(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in doc["services"].items() if n.startswith("gateway")}


def schema() -> dict[str, Any]:
    assert SCHEMA.is_file(), f"{SCHEMA} is missing: scripts/install-system-deps.sh installs docker-compose"
    data: dict[str, Any] = json.loads(SCHEMA.read_text())
    return data


@pytest.mark.parametrize("name", FILES)
def test_the_compose_file_matches_the_compose_specification_schema(name: str) -> None:
    """Each file validates against the Compose Specification schema; a copy with a misspelt service
    key does not (so the check can fail)."""
    # its "$schema" spells draft 2019-09's URL in a form jsonschema does not look up: named here
    validator = jsonschema.Draft201909Validator(schema())
    doc = load(name)
    validator.validate(doc)
    broken = json.loads(json.dumps(doc))
    next(iter(broken["services"].values()))["restrat"] = "always"
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(broken)


@pytest.mark.parametrize("name", FILES)
def test_docker_compose_config_accepts_the_file(name: str) -> None:
    """``docker-compose config -q`` (Debian's docker-compose, no engine needed) exits 0."""
    exe = shutil.which("docker-compose")
    assert exe, "docker-compose is missing: scripts/install-system-deps.sh installs it"
    done = subprocess.run([exe, "-f", str(DEPLOY / name), "config", "-q"], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env={"PATH": os.environ["PATH"]})
    assert done.returncode == 0 and "ignored" not in done.stderr, done.stderr


def mounts(doc: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(service, host path, container path) of every bind mount."""
    out = []
    for name, svc in doc["services"].items():
        for vol in svc.get("volumes", []):
            src, dst, *_ = vol.split(":")
            if src.startswith("."):
                out.append((name, src, dst))
    return out


@pytest.mark.parametrize("name", FILES)
def test_every_referenced_file_exists_and_build_contexts_hold_a_dockerfile(name: str) -> None:
    doc = load(name)
    for _, src, _ in mounts(doc):
        assert (DEPLOY / src).is_file(), src
    for secret in doc.get("secrets", {}).values():
        assert (DEPLOY / secret["file"]).is_file(), secret
    for svc in doc["services"].values():
        if "build" in svc:
            assert (DEPLOY / svc["build"]["context"] / svc["build"]["dockerfile"]).is_file()


@pytest.mark.parametrize("name", FILES)
def test_ports_healthchecks_and_volumes(name: str) -> None:
    """Host ports are published on 127.0.0.1 only and never twice; every service has a health check;
    each gateway runs read-only as the image's non-root user with its own data volume at
    /var/lib/dvcgw, and its stop grace covers drain_delay + 2 × shutdown_grace of deploy/dvcgw.toml."""
    doc = load(name)
    published = [p for s in doc["services"].values() for p in s.get("ports", [])]
    assert all(p.startswith("127.0.0.1:") for p in published), published
    host_ports = [p.split(":")[1] for p in published]
    assert len(host_ports) == len(set(host_ports)), host_ports
    for svc_name, svc in doc["services"].items():
        assert svc.get("healthcheck", {}).get("test"), f"{svc_name} has no health check"
    data_volumes = []
    for svc_name, svc in gateways(doc).items():
        assert svc["read_only"] is True and svc["user"] == "10001:10001" and "/tmp" in svc["tmpfs"], svc_name
        data = [v.split(":")[0] for v in svc["volumes"] if v.split(":")[1] == "/var/lib/dvcgw"]
        assert len(data) == 1 and data[0] in doc["volumes"], svc_name
        data_volumes += data
        assert svc["stop_signal"] == "SIGTERM" and seconds(svc["stop_grace_period"]) > stop_budget()
        # liveness, as the image's HEALTHCHECK: /readyz is for load balancers (503 while draining or
        # in maintenance, when the container must not be judged unhealthy)
        assert any("/healthz" in part for part in svc["healthcheck"]["test"])
    assert len(data_volumes) == len(set(data_volumes)), "two gateways share a store"


def test_the_full_stack_has_two_gateways_on_kraft_kafka_prometheus_and_grafana() -> None:
    doc = load("compose.yml")
    gws = gateways(doc)
    assert len(gws) == 2
    for svc in gws.values():
        assert svc["environment"]["DVCGW_QUEUE__BACKEND"] == "kafka"
        assert svc["environment"]["DVCGW_QUEUE__KAFKA__BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert svc["depends_on"]["kafka"]["condition"] == "service_healthy"
    kafka = doc["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller", "KRaft: no ZooKeeper"
    assert not any("zookeeper" in s.get("image", "") for s in doc["services"].values())
    prom = {dst: src for svc, src, dst in mounts(doc) if svc == "prometheus"}
    assert (DEPLOY / prom["/etc/prometheus/alerts.yml"]).resolve() == ROOT / "monitoring/prometheus/alerts.yml"
    graf = {dst: src for svc, src, dst in mounts(doc) if svc == "grafana"}
    assert (DEPLOY / graf["/var/lib/grafana/dashboards/dvc-gateway/dvc-gateway.json"]).resolve() == \
        ROOT / "monitoring/grafana/dvc-gateway.json"
    provider = yaml.safe_load((DEPLOY / graf["/etc/grafana/provisioning/dashboards/dvcgw.yml"]).read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards/dvc-gateway"


def test_the_single_set_up_is_one_gateway_on_sqlite() -> None:
    doc = load("compose.single.yml")
    (gw,) = gateways(doc).values()
    assert gw["environment"]["DVCGW_QUEUE__BACKEND"] == "sqlite"
    assert "kafka" not in doc["services"]


def test_the_stack_datasource_differs_from_the_repository_one_only_in_its_url() -> None:
    """deploy/grafana/datasource.yml is monitoring/grafana's provisioning with the url of the
    prometheus service: the uid the dashboard defaults to stays the same."""
    ours = yaml.safe_load((DEPLOY / "grafana/datasource.yml").read_text())
    base = yaml.safe_load((ROOT / "monitoring/grafana/provisioning/datasources/prometheus.yml").read_text())
    assert ours["datasources"][0].pop("url") == "http://prometheus:9090"
    base["datasources"][0].pop("url")
    assert ours == base


def test_promtool_accepts_the_stack_prometheus_config_with_the_alert_rules(tmp_path: Path) -> None:
    """The Prometheus configuration and the rules it loads, laid out as the container sees them."""
    shutil.copy(DEPLOY / "prometheus/prometheus.yml", tmp_path / "prometheus.yml")
    shutil.copy(ROOT / "monitoring/prometheus/alerts.yml", tmp_path / "alerts.yml")
    done = subprocess.run(["promtool", "check", "config", str(tmp_path / "prometheus.yml")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    found = re.search(r"SUCCESS: (\d+) rules found", done.stdout)
    assert found and int(found[1]) > 1, done.stdout  # the alert rules were loaded, not a stub
    cfg = yaml.safe_load((tmp_path / "prometheus.yml").read_text())
    assert cfg["scrape_configs"][0]["job_name"] == "dvc-gateway"
    assert 'job="dvc-gateway"' in (tmp_path / "alerts.yml").read_text()


@pytest.mark.parametrize(("name", "service"), [("compose.yml", "gateway-1"), ("compose.single.yml", "gateway")])
def test_the_settings_file_loads_as_the_gateway_sees_it(name: str, service: str, tmp_path: Path) -> None:
    """deploy/dvcgw.toml with the service's environment and the image's: it loads, the store is on
    the data volume and the secrets come from the mounted files."""
    from config.loader import load_settings
    from config.schema import Settings

    svc = load(name)["services"][service]
    text = (DEPLOY / "dvcgw.toml").read_text().replace("/run/secrets/", f"{DEPLOY / 'secrets'}/")
    (tmp_path / "dvcgw.toml").write_text(text)
    env = {"DVCGW_STORAGE__PATH": "/var/lib/dvcgw/dvcgw.sqlite3", **svc["environment"]}
    env.pop("DVCGW_CONFIG")
    settings = load_settings(Settings, tmp_path / "dvcgw.toml", env)
    assert settings.storage.path.startswith("/var/lib/dvcgw/")
    assert settings.server.listen == "0.0.0.0:8080"
    assert settings.queue.backend == svc["environment"]["DVCGW_QUEUE__BACKEND"]
    assert settings.operator.api_key == "demo-operator-key" and settings.agencies[0].api_key == "demo-agency-key"
