"""Each service chart agrees with its service's service.yaml: command, port, route, probes,
migration, workers and backing services. Checked for every service.yaml in the repository."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml
from chartkit import APP_CHARTS, CHARTS, REPO

SERVICE_FILES = sorted(
    path for path in (REPO / "services").glob("*/service.yaml") if path.parent.name in APP_CHARTS
)


def chart_defaults(chart: str) -> dict[str, Any]:
    with helm_python.Chart.load(CHARTS / chart) as loaded:
        return loaded.values


def service_of(path: Path) -> dict[str, Any]:
    service: dict[str, Any] = yaml.safe_load(path.read_text())
    return service


def test_every_service_chart_exists_for_a_deployable_service() -> None:
    for path in (REPO / "services").glob("*/service.yaml"):
        assert (CHARTS / path.parent.name / "Chart.yaml").is_file(), f"no chart for {path}"


@pytest.mark.parametrize("path", SERVICE_FILES, ids=lambda p: p.parent.name)
def test_chart_matches_service_yaml(path: Path) -> None:
    service = service_of(path)
    values = chart_defaults(service["name"])
    assert values["command"] == service["run"]
    assert values["port"] == service["port"]
    assert values["route"] == service["route"]
    assert values["probes"]["liveness"]["path"] == service["health"]
    assert values["probes"]["readiness"]["path"] == service["ready"]
    migration = values["migration"]
    assert migration["enabled"] is ("migrate" in service)
    if "migrate" in service:
        assert migration["command"] == service["migrate"]
    workers = {w["name"]: w["command"] for w in values["workers"]}
    assert workers == {w["name"]: w["run"] for w in service.get("workers", [])}


@pytest.mark.parametrize("path", SERVICE_FILES, ids=lambda p: p.parent.name)
def test_chart_reaches_exactly_the_backing_services_it_needs(path: Path) -> None:
    service = service_of(path)
    name, needs = service["name"], set(service.get("needs", []))
    values = chart_defaults(name)
    egress = {target["service"] for target in values["networkPolicy"]["egressTo"]}
    secret_env = {entry["name"] for entry in values["secretEnv"]}
    assert egress & {"postgres", "redis"} == needs
    assert ("DATABASE_URL" in secret_env) is ("postgres" in needs)
    assert ("REDIS_URL" in secret_env) is ("redis" in needs)
    assert (name in chart_defaults("postgres")["databases"]["services"]) is ("postgres" in needs)
    assert (name in chart_defaults("redis")["clients"]) is ("redis" in needs)


PYTHON_SERVICES = [p for p in SERVICE_FILES if service_of(p)["kind"] == "python"]


@pytest.mark.parametrize("path", PYTHON_SERVICES, ids=lambda p: p.parent.name)
def test_python_services_trust_forwarded_headers_from_the_pod_network_only(path: Path) -> None:
    # The services honour X-Forwarded-For only from FORWARDED_ALLOW_IPS: the K3s pod network,
    # whose only callers NetworkPolicy lets in are the gateway's pods and the namespace's services.
    service = service_of(path)
    allowed = chart_defaults(service["name"])["config"].get("FORWARDED_ALLOW_IPS")
    config = yaml.safe_load((REPO / "k3s" / "config.yaml").read_text())
    assert allowed == config["cluster-cidr"]
    assert "*" not in allowed
