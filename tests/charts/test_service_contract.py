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


UVICORN_SERVICES = [p for p in SERVICE_FILES if service_of(p)["run"][0] == "uvicorn"]


@pytest.mark.parametrize("path", UVICORN_SERVICES, ids=lambda p: p.parent.name)
def test_uvicorn_services_see_the_client_address_behind_the_ingress(path: Path) -> None:
    # Per-IP rate limits need the client's address, which ingress-nginx sends in X-Forwarded-For;
    # uvicorn honours that header only from the addresses in FORWARDED_ALLOW_IPS.
    service = service_of(path)
    assert chart_defaults(service["name"])["config"].get("FORWARDED_ALLOW_IPS") == "*"
