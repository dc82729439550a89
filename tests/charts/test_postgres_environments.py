"""charts/postgres and charts/platform agree, per environment, on what the other one makes: the
services' DATABASE_URL host is the primary the postgres chart's engine serves (`postgres` for the
StatefulSet, `postgres-rw` for a CloudNativePG Cluster), and every Secret the postgres chart
references is one the platform chart generates, with the same password as the service's URL."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlsplit

import pytest
from chartkit import (
    ENVIRONMENTS,
    Manifest,
    containers,
    load_values,
    namespace_for,
    pod_specs,
    render,
    selector_matches,
)

# ci: the pipeline's ephemeral K3s has values files of its own in both charts.
ALL_ENVIRONMENTS = (*ENVIRONMENTS, "ci")


def of_kind(objects: list[Manifest], kind: str) -> list[Manifest]:
    return [o for o in objects if o["kind"] == kind]


def primary_host(postgres: list[Manifest]) -> str:
    """The Service name of the primary in a postgres render: CloudNativePG serves a Cluster's
    primary as `<cluster>-rw`; the StatefulSet's is the Service that selects its pods."""
    clusters = of_kind(postgres, "Cluster")
    if clusters:
        (cluster,) = clusters
        return f"{cluster['metadata']['name']}-rw"
    (statefulset,) = of_kind(postgres, "StatefulSet")
    labels = statefulset["spec"]["template"]["metadata"]["labels"]
    (service,) = [
        s
        for s in of_kind(postgres, "Service")
        if selector_matches({"matchLabels": s["spec"]["selector"]}, labels)
        and any(p["port"] == 5432 for p in s["spec"]["ports"])
    ]
    return str(service["metadata"]["name"])


def decoded(secret: Manifest) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}


def generated_secrets(platform_values: dict[str, Any], environment: str) -> dict[str, Manifest]:
    """The platform chart's generated Secrets, generated in every environment for the check
    (dev and ci get theirs from the pipeline, with the same host value)."""
    values = {**platform_values}
    values["generatedSecrets"] = {**values.get("generatedSecrets", {}), "enabled": True}
    objects = render("platform", values, namespace_for(environment))
    return {o["metadata"]["name"]: o for o in of_kind(objects, "Secret")}


def host_mismatches(
    environment: str, postgres_values: dict[str, Any], platform_values: dict[str, Any]
) -> list[str]:
    postgres = render("postgres", postgres_values, namespace_for(environment))
    primary = primary_host(postgres)
    problems = []
    for name, secret in sorted(generated_secrets(platform_values, environment).items()):
        if name.endswith("-database"):
            host = urlsplit(decoded(secret)["url"]).hostname
            if host != primary:
                problems.append(f"{environment}: {name} points at {host}, the primary is {primary}")
    return problems


@pytest.mark.parametrize("environment", ALL_ENVIRONMENTS)
def test_every_database_url_points_at_the_primary_of_its_environment(environment: str) -> None:
    problems = host_mismatches(
        environment, load_values("postgres", environment), load_values("platform", environment)
    )
    assert problems == []


@pytest.mark.parametrize("environment", ALL_ENVIRONMENTS)
def test_the_check_sees_a_platform_that_does_not_follow_the_engine(environment: str) -> None:
    postgres_values = load_values("postgres", environment)
    engine = postgres_values.get("engine", "statefulset")
    postgres_values["engine"] = "statefulset" if engine == "cloudnativepg" else "cloudnativepg"
    problems = host_mismatches(environment, postgres_values, load_values("platform", environment))
    assert len(problems) == 4, problems  # auth, backend, data-processor, media-storage


@pytest.mark.parametrize("engine", ["statefulset"])
def test_the_postgres_charts_own_clients_use_the_primary(engine: str) -> None:
    values = load_values("postgres", "production")
    values["engine"] = engine
    objects = render("postgres", values, "chat-production")
    hosts = {
        env["value"]
        for obj in objects
        for spec in pod_specs(obj)
        for container in containers(spec)
        for env in container.get("env", [])
        if env["name"] == "PGHOST"
    }
    assert hosts == {primary_host(objects)}


@pytest.mark.parametrize("environment", ALL_ENVIRONMENTS)
def test_a_platform_set_to_the_cloudnativepg_primary_matches_that_engine(environment: str) -> None:
    postgres_values = load_values("postgres", environment)
    postgres_values["engine"] = "cloudnativepg"
    platform_values = load_values("platform", environment)
    platform_values["postgres"] = {"host": "postgres-rw"}
    assert host_mismatches(environment, postgres_values, platform_values) == []
