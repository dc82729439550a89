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
    kubernetes_version,
    load_values,
    namespace_for,
    pod_specs,
    problems_of,
    render,
    required_secret_names,
    selector_matches,
)

# ci: the pipeline's ephemeral K3s has values files of its own in both charts.
ALL_ENVIRONMENTS = (*ENVIRONMENTS, "ci")
# Where charts/platform generates the namespace's Secrets (dev and ci: the pipeline does).
GENERATING = [
    environment
    for environment in ALL_ENVIRONMENTS
    if load_values("platform", environment).get("generatedSecrets", {}).get("enabled")
]


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


@pytest.mark.parametrize("engine", ["statefulset", "cloudnativepg"])
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


def cloudnativepg_values(environment: str) -> dict[str, Any]:
    values = load_values("postgres", environment)
    values["engine"] = "cloudnativepg"
    return values


def missing_secrets(
    environment: str, postgres_values: dict[str, Any], platform_values: dict[str, Any]
) -> set[str]:
    """Secrets the postgres render references that the platform chart does not generate."""
    postgres = render("postgres", postgres_values, namespace_for(environment))
    needed = set().union(*(required_secret_names(o) for o in postgres))
    return needed - set(generated_secrets(platform_values, environment))


def test_generating_environments_are_found() -> None:
    assert set(GENERATING) == {"preview", "staging", "production"}


@pytest.mark.parametrize("environment", GENERATING)
@pytest.mark.parametrize("engine", ["statefulset", "cloudnativepg"])
def test_the_platform_generates_every_secret_the_postgres_chart_references(
    environment: str, engine: str
) -> None:
    postgres_values = load_values("postgres", environment)
    postgres_values["engine"] = engine
    platform_values = load_values("platform", environment)
    assert missing_secrets(environment, postgres_values, platform_values) == set()


def test_the_check_sees_a_role_secret_that_is_not_generated() -> None:
    platform_values = load_values("platform", "preview")
    platform_values["generatedSecrets"]["databases"] = ["auth", "backend", "data-processor"]
    missing = missing_secrets("preview", cloudnativepg_values("preview"), platform_values)
    assert missing == {"media-storage-postgres-role"}


@pytest.mark.parametrize("environment", GENERATING)
def test_each_managed_role_logs_in_with_the_password_of_its_services_url(environment: str) -> None:
    postgres = render("postgres", cloudnativepg_values(environment), namespace_for(environment))
    (cluster,) = of_kind(postgres, "Cluster")
    secrets = generated_secrets(load_values("platform", environment), environment)
    assert problems_of(list(secrets.values()), kubernetes_version()) == []
    urls = [
        urlsplit(decoded(s)["url"]) for name, s in secrets.items() if name.endswith("-database")
    ]
    url_passwords = {url.username: url.password for url in urls}
    roles = cluster["spec"]["managed"]["roles"]
    assert {r["name"] for r in roles} >= set(url_passwords)
    for role in roles:
        secret = secrets[role["passwordSecret"]["name"]]
        assert secret["type"] == "kubernetes.io/basic-auth"
        credentials = decoded(secret)
        assert set(credentials) == {"username", "password"}
        assert credentials["username"] == role["name"]  # CloudNativePG refuses any other
        if role["name"] in url_passwords:
            assert credentials["password"] == url_passwords[role["name"]], role["name"]
