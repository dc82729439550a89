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

EXPECTED_INSTANCES = {"production": 3, "staging": 2, "dev": 1, "preview": 1}


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
    backups = int(load_values("postgres", environment).get("backup", {}).get("enabled", True))
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
    assert set(roles) == set(expected) | ({"backup"} if backups else set())
    for role, service in expected.items():
        assert roles[role]["passwordSecret"] == {"name": f"{service}-postgres-role"}
        assert roles[role]["login"] is True
    databases = {d["spec"]["name"]: d["spec"] for d in of_kind(objects, "Database")}
    assert set(databases) == set(expected)
    for name, spec in databases.items():
        assert spec["owner"] == name
        assert spec["cluster"] == {"name": cluster["metadata"]["name"]}
        assert spec["databaseReclaimPolicy"] == "retain"
    # The operator replaces the StatefulSet and the ensure-databases Job; the nightly dumps stay
    # where backups are on (test_postgres_cloudnativepg_backup.py runs them).
    assert of_kind(objects, "StatefulSet") == []
    assert [j["metadata"]["name"] for j in of_kind(objects, "Job")] == (
        ["postgres-backups-claim"] if backups else []
    )
    for kind in ("CronJob", "PersistentVolumeClaim"):
        assert len(of_kind(objects, kind)) == backups, kind


# Staging and production keep the StatefulSet until an operator switches them (README.md,
# "Switching an environment": their data and generated Secrets need the runbook's steps).
ENGINES = {"dev": "cloudnativepg", "preview": "cloudnativepg", "staging": "statefulset",
           "production": "statefulset"}  # fmt: skip


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_each_environment_runs_its_engine(environment: str) -> None:
    rendered = render_environment("postgres", environment)
    cnpg = ENGINES[environment] == "cloudnativepg"
    assert len(rendered.of_kind("Cluster")) == cnpg
    assert len(rendered.of_kind("StatefulSet")) == (not cnpg)


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


STORE = {
    "enabled": True,
    "endpoint": "https://s3.example.test",
    "bucket": "chat-backups",
    "prefix": "production/postgres",
    "credentialsSecret": {"name": "postgres-backup-s3"},
    "egressCIDRs": ["203.0.113.7/32"],
}


def render_with_store(store: dict[str, object]) -> list[Manifest]:
    values = load_values("postgres", "production")
    values["engine"] = "cloudnativepg"
    values["cloudnativepg"] = {**values.get("cloudnativepg", {}), "backup": store}
    return render("postgres", values, "chat-production")


def test_backups_and_wal_archiving_go_to_s3_through_the_barman_cloud_plugin() -> None:
    objects = render_with_store(STORE)
    assert problems_of(objects, kubernetes_version()) == []
    (cluster,) = of_kind(objects, "Cluster")
    (store,) = of_kind(objects, "ObjectStore")
    (scheduled,) = of_kind(objects, "ScheduledBackup")
    (plugin,) = cluster["spec"]["plugins"]
    assert plugin["name"] == "barman-cloud.cloudnative-pg.io"
    assert plugin["isWALArchiver"] is True
    assert plugin["parameters"] == {"barmanObjectName": store["metadata"]["name"]}
    assert "backup" not in cluster["spec"], "the deprecated in-tree barmanObjectStore"
    configuration = store["spec"]["configuration"]
    assert configuration["destinationPath"] == "s3://chat-backups/production/postgres"
    assert configuration["endpointURL"] == "https://s3.example.test"
    # The keys come from the Secret only: nothing of them in the rendered objects.
    for credential in ("accessKeyId", "secretAccessKey"):
        assert configuration["s3Credentials"][credential]["name"] == "postgres-backup-s3"
    assert scheduled["spec"]["cluster"] == {"name": cluster["metadata"]["name"]}
    assert scheduled["spec"]["method"] == "plugin"
    assert scheduled["spec"]["pluginConfiguration"]["name"] == plugin["name"]
    assert len(scheduled["spec"]["schedule"].split()) == 6  # CloudNativePG's cron has seconds
    misspelt = {**store, "spec": {**store["spec"], "retention": "14d"}}
    assert any("retention" in p for p in problems_of([misspelt], kubernetes_version()))


def test_without_a_store_nothing_is_archived() -> None:
    objects = render_cnpg("production")
    assert of_kind(objects, "ObjectStore") == []
    assert of_kind(objects, "ScheduledBackup") == []
    (cluster,) = of_kind(objects, "Cluster")
    assert "plugins" not in cluster["spec"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"bucket": ""}, "bucket"),
        ({"credentialsSecret": {"name": ""}}, "name"),
        ({"schedule": "17 3 * * *"}, "schedule"),
        ({"retentionPolicy": "2 weeks"}, "retentionPolicy"),
    ],
)
def test_a_bad_store_setting_is_refused_by_name(change: dict[str, object], field: str) -> None:
    with pytest.raises(helm_python.HelmError, match=field):
        render_with_store({**STORE, **change})
