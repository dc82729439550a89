"""The postgres chart with engine: cloudnativepg, rendered with real Helm code: a CloudNativePG
Cluster (three instances in production, one elsewhere) with a managed role and a Database per
service instead of the StatefulSet and the ensure-databases Job, validated against CloudNativePG
1.30.0's own CRD schemas (tests/crds/cloudnative-pg) with unknown fields refused."""

from __future__ import annotations

import copy

import helm_python
import pytest
from chartkit import (
    ENVIRONMENTS,
    Manifest,
    kubernetes_version,
    load_values,
    namespace_for,
    problems_of,
    render,
    render_environment,
)

EXPECTED_INSTANCES = {"production": 3, "staging": 1, "dev": 1, "preview": 1}


def render_cnpg(environment: str) -> list[Manifest]:
    values = load_values("postgres", environment)
    values["engine"] = "cloudnativepg"
    return render("postgres", values, namespace_for(environment))


def of_kind(objects: list[Manifest], kind: str) -> list[Manifest]:
    return [o for o in objects if o["kind"] == kind]


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_cloudnativepg_renders_a_valid_cluster_with_a_role_and_database_per_service(
    environment: str,
) -> None:
    objects = render_cnpg(environment)
    assert problems_of(objects, kubernetes_version()) == []
    (cluster,) = of_kind(objects, "Cluster")
    assert cluster["spec"]["instances"] == EXPECTED_INSTANCES[environment]
    services = load_values("postgres", environment).get("databases", {}).get("services") or [
        "auth",
        "backend",
        "data-processor",
        "media-storage",
    ]
    roles = {r["name"]: r for r in cluster["spec"]["managed"]["roles"]}
    expected = {s.replace("-", "_"): s for s in services}
    assert set(roles) == set(expected)
    for role, service in expected.items():
        assert roles[role]["passwordSecret"] == {"name": f"{service}-postgres-role"}
        assert roles[role]["login"] is True
    databases = {d["spec"]["name"]: d["spec"] for d in of_kind(objects, "Database")}
    assert set(databases) == set(expected)
    for name, spec in databases.items():
        assert spec["owner"] == name
        assert spec["cluster"] == {"name": cluster["metadata"]["name"]}
        assert spec["databaseReclaimPolicy"] == "retain"
    # The operator replaces the StatefulSet, the Job and the dumps to a local volume.
    for kind in ("StatefulSet", "Job", "CronJob", "PersistentVolumeClaim"):
        assert of_kind(objects, kind) == [], kind


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_statefulset_stays_the_default_engine(environment: str) -> None:
    rendered = render_environment("postgres", environment)
    assert rendered.of_kind("Cluster") == []
    assert rendered.of_kind("Database") == []
    assert rendered.of_kind("StatefulSet")


def test_the_cloudnativepg_schema_refuses_an_unknown_field_and_a_bad_value() -> None:
    (cluster,) = of_kind(render_cnpg("production"), "Cluster")
    misspelt = copy.deepcopy(cluster)
    misspelt["spec"]["instancez"] = 3
    negative = copy.deepcopy(cluster)
    negative["spec"]["instances"] = 0
    problems = problems_of([misspelt, negative], kubernetes_version())
    assert any("instancez" in p for p in problems), problems
    assert any("spec.instances: 0 is less than the minimum of 1" in p for p in problems), problems


def test_values_schema_refuses_an_unknown_engine() -> None:
    values = load_values("postgres", "dev")
    values["engine"] = "patroni"
    with pytest.raises(helm_python.HelmError, match="engine"):
        render("postgres", values, "chat-dev")
