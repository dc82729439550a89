"""charts/media-storage's storage modes rendered with real Helm and validated against the pinned
Kubernetes schemas: S3 (replicas, rolling updates, keys from Secrets, egress to the store) and the
volume (one replica, Recreate); the orphan sweeper's CronJob; refusals that name the value."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from chartkit import (
    Manifest,
    kubernetes_version,
    load_values,
    pod_specs,
    problems_of,
    render,
    selector_matches,
)

CHART = "media-storage"
NAMESPACE = "chat-production"
DATABASE = {"name": "DATABASE_URL", "secretName": "media-storage-database", "key": "url"}
S3_KEYS = [
    {"name": "MEDIA_S3_ACCESS_KEY", "secretName": "media-storage-s3", "key": "access-key"},
    {"name": "MEDIA_S3_SECRET_KEY", "secretName": "media-storage-s3", "key": "secret-key"},
]
# The block charts/media-storage/README.md ("Object storage") tells an operator to add.
S3_OVERLAY: dict[str, Any] = {
    "replicas": 2,
    "config": {
        "MEDIA_STORAGE": "s3",
        "MEDIA_ROOT": None,
        "MEDIA_S3_ENDPOINT": "https://s3.eu-central-1.amazonaws.com",
        "MEDIA_S3_BUCKET": "chat-media-production",
        "MEDIA_S3_REGION": "eu-central-1",
    },
    "secretEnv": [DATABASE, *S3_KEYS],
    "persistence": {"enabled": False},
    "podDisruptionBudget": {"enabled": True},
    "networkPolicy": {"internetEgress": True},
}


def merged(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """`helm -f base -f overlay`: maps merge, everything else is replaced."""
    result = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def production(overlay: dict[str, Any] | None = None) -> list[Manifest]:
    return render(CHART, merged(load_values(CHART, "production"), overlay or {}), NAMESPACE)


def one(objects: list[Manifest], kind: str, name: str) -> Manifest:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def env_of(pod_spec: Manifest) -> dict[str, Manifest]:
    return {e["name"]: e for e in pod_spec["containers"][0].get("env", [])}


def test_s3_runs_two_replicas_with_rolling_updates_a_budget_and_no_volume() -> None:
    objects = production(S3_OVERLAY)
    assert problems_of(objects, kubernetes_version()) == []
    deployment = one(objects, "Deployment", CHART)
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert not [o for o in objects if o["kind"] == "PersistentVolumeClaim"]
    assert one(objects, "PodDisruptionBudget", CHART)["spec"]["maxUnavailable"] == 1
    (pod,) = pod_specs(deployment)
    assert "data" not in {v["name"] for v in pod.get("volumes", [])}
    config = one(objects, "ConfigMap", f"{CHART}-config")["data"]
    assert config["MEDIA_STORAGE"] == "s3"
    assert config["MEDIA_S3_BUCKET"] == "chat-media-production"
    assert "MEDIA_ROOT" not in config
    env = env_of(pod)
    for key in S3_KEYS:  # from the Secret, by reference only
        assert env[key["name"]]["valueFrom"]["secretKeyRef"] == {
            "name": key["secretName"],
            "key": key["key"],
        }
        assert "value" not in env[key["name"]]


def test_s3_pods_and_the_sweeper_may_reach_the_store() -> None:
    objects = production(S3_OVERLAY)
    policy = one(objects, "NetworkPolicy", CHART)
    to_store = [
        rule
        for rule in policy["spec"]["egress"]
        if any("ipBlock" in peer for peer in rule["to"])
        and {"protocol": "TCP", "port": 443} in rule["ports"]
    ]
    assert to_store, "no egress to the object store's HTTPS endpoint"
    sweep = one(objects, "CronJob", f"{CHART}-sweep")
    labels = sweep["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    assert selector_matches(policy["spec"]["podSelector"], labels)
    # The migration reaches its database only, never the store.
    migrate = one(objects, "NetworkPolicy", f"{CHART}-migrate")
    assert not any("ipBlock" in peer for rule in migrate["spec"]["egress"] for peer in rule["to"])


@pytest.mark.parametrize("environment", ["ci", "dev", "preview", "staging", "production"])
def test_every_environment_sweeps_orphans_and_migrates_its_catalog(environment: str) -> None:
    values = load_values(CHART, environment)
    if environment == "production":
        values = merged(values, S3_OVERLAY)
    objects = render(CHART, values, NAMESPACE)
    assert problems_of(objects, kubernetes_version()) == []
    sweep = one(objects, "CronJob", f"{CHART}-sweep")
    (pod,) = pod_specs(sweep)
    assert pod["restartPolicy"] == "Never"
    assert pod["containers"][0]["command"] == ["python", "-m", "media_storage.sweep"]
    assert (
        env_of(pod)["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == DATABASE["secretName"]
    )
    assert sweep["spec"]["concurrencyPolicy"] == "Forbid"
    job = one(objects, "Job", f"{CHART}-migrate")
    assert job["spec"]["template"]["spec"]["containers"][-1]["command"] == [
        "python",
        "-m",
        "media_storage.migrate",
    ]


def test_the_volume_keeps_one_replica_and_recreate() -> None:
    objects = production()
    deployment = one(objects, "Deployment", CHART)
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert one(objects, "ConfigMap", f"{CHART}-config")["data"]["MEDIA_STORAGE"] == "filesystem"


@pytest.mark.parametrize(
    ("overlay", "message"),
    [
        (merged(S3_OVERLAY, {"persistence": {"enabled": True}}),
         "persistence.enabled must be false"),
        (merged(S3_OVERLAY, {"config": {"MEDIA_S3_BUCKET": ""}}),
         "config.MEDIA_S3_BUCKET must be set"),
        ({**S3_OVERLAY, "secretEnv": [DATABASE, S3_KEYS[0]]},
         "secretEnv must name MEDIA_S3_SECRET_KEY"),
        (
            merged(S3_OVERLAY, {"config": {"MEDIA_S3_ACCESS_KEY": "AKIA"}}),
            "config.MEDIA_S3_ACCESS_KEY: S3 keys come from a Secret",
        ),
        ({"replicas": 2}, "replicas must be 1"),
        ({"config": {"MEDIA_STORAGE": "gcs"}}, 'must be s3 or filesystem, got "gcs"'),
    ],
    ids=["s3-with-volume", "no-bucket", "no-secret-key", "key-in-values", "volume-2", "unknown"],
)  # fmt: skip
def test_storage_settings_that_cannot_work_are_refused_naming_the_value(
    overlay: dict[str, Any], message: str
) -> None:
    with pytest.raises(Exception, match=message):
        production(overlay)
