"""The postgres chart's off-node backup copy (backup.offsite), rendered with real Helm code and
validated against the pinned Kubernetes schemas: off by default and then without a trace, on it
runs offsite.sh after the dump with the keys from a Secret and egress to the store only."""

from __future__ import annotations

import copy
from typing import Any

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
from charts.test_policy import SECRET_NAME, egress_peers, restricted_violations

STORE = {
    "enabled": True,
    "endpoint": "https://s3.example.test",
    "bucket": "chat-backups",
    "prefix": "production/postgres",
    "egressCIDRs": ["203.0.113.7/32"],
    "credentialsSecret": {"name": "postgres-offsite"},
}
BACKED_UP = [e for e in ENVIRONMENTS if load_values("postgres", e)["backup"]["enabled"]]


def with_offsite(environment: str, **offsite: Any) -> dict[str, Any]:
    values = load_values("postgres", environment)
    values["backup"]["offsite"] = {**STORE, **offsite}
    return values


def render_with_offsite(environment: str = "production", **offsite: Any) -> list[Manifest]:
    return render("postgres", with_offsite(environment, **offsite), namespace_for(environment))


def named(objects: list[Manifest] | tuple[Manifest, ...], kind: str, name: str) -> Manifest:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def pod_spec(cronjob: Manifest) -> Manifest:
    spec: Manifest = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return spec


@pytest.mark.parametrize("environment", BACKED_UP)
def test_without_offsite_the_backup_job_is_the_dump_alone(environment: str) -> None:
    objects = render_environment("postgres", environment).objects
    assert load_values("postgres", environment)["backup"].get("offsite") is None
    spec = pod_spec(named(objects, "CronJob", "postgres-backup"))
    assert "initContainers" not in spec
    assert [c["name"] for c in spec["containers"]] == ["backup"]
    assert "offsite.sh" not in named(objects, "ConfigMap", "postgres-scripts")["data"]
    assert "postgres-backup-offsite" not in {o["metadata"]["name"] for o in objects}


@pytest.mark.parametrize("environment", BACKED_UP)
def test_turning_offsite_on_adds_the_copy_and_changes_nothing_else(environment: str) -> None:
    """The dump runs as before (same container, now first as an initContainer); taking the
    offsite parts away again gives back exactly the render without offsite."""
    without = render_environment("postgres", environment).objects
    enabled = render_with_offsite(environment)
    cronjob = copy.deepcopy(named(enabled, "CronJob", "postgres-backup"))
    spec = pod_spec(cronjob)
    assert [c["name"] for c in spec["initContainers"]] == ["backup"]
    assert [c["name"] for c in spec["containers"]] == ["offsite"]
    spec["containers"] = spec.pop("initContainers")
    assert cronjob == named(without, "CronJob", "postgres-backup")
    scripts = copy.deepcopy(named(enabled, "ConfigMap", "postgres-scripts"))
    assert scripts["data"].pop("offsite.sh").startswith("#!/bin/sh")
    assert scripts == named(without, "ConfigMap", "postgres-scripts")
    rest = [o for o in enabled if o["kind"] not in {"CronJob", "ConfigMap"}]
    assert [o for o in rest if o["metadata"]["name"] != "postgres-backup-offsite"] == [
        o for o in without if o["kind"] not in {"CronJob", "ConfigMap"}
    ]


def test_the_environments_with_backups_are_checked() -> None:
    assert BACKED_UP == ["staging", "production"]


@pytest.mark.parametrize("environment", sorted(set(ENVIRONMENTS) - set(BACKED_UP)))
def test_offsite_without_backups_renders_nothing_of_it(environment: str) -> None:
    objects = render_with_offsite(environment)
    assert objects == list(render_environment("postgres", environment).objects)


def test_the_offsite_container_is_configured_from_values_and_valid() -> None:
    objects = render_with_offsite(provider="AWS", region="eu-central-1")
    assert problems_of(objects, kubernetes_version()) == []
    cronjob = named(objects, "CronJob", "postgres-backup")
    assert restricted_violations(cronjob, pod_spec(cronjob)) == []
    (offsite,) = pod_spec(cronjob)["containers"]
    assert offsite["command"] == ["/bin/sh", "/scripts/offsite.sh"]
    assert offsite["image"].startswith("docker.io/rclone/rclone@sha256:")
    values = {e["name"]: e.get("value") for e in offsite["env"]}
    assert values == {
        "BACKUP_DIR": "/backups",
        "HOME": "/tmp",
        "OFFSITE_BUCKET": "chat-backups",
        "OFFSITE_PREFIX": "production/postgres",
        "RCLONE_CONFIG_OFFSITE_TYPE": "s3",
        "RCLONE_CONFIG_OFFSITE_PROVIDER": "AWS",
        "RCLONE_CONFIG_OFFSITE_ENDPOINT": "https://s3.example.test",
        "RCLONE_CONFIG_OFFSITE_REGION": "eu-central-1",
        "RCLONE_CONFIG_OFFSITE_ACCESS_KEY_ID": None,
        "RCLONE_CONFIG_OFFSITE_SECRET_ACCESS_KEY": None,
    }
    mounts = {m["mountPath"]: m for m in offsite["volumeMounts"]}
    assert mounts["/backups"] == {"name": "backups", "mountPath": "/backups", "readOnly": True}
    assert {"/tmp", "/scripts"} <= set(mounts)


def test_the_store_keys_come_only_from_the_secret() -> None:
    objects = render_with_offsite(
        credentialsSecret={
            "name": "s3-keys",
            "accessKeyId": {"key": "id"},
            "secretAccessKey": {"key": "key"},
        }
    )
    (offsite,) = pod_spec(named(objects, "CronJob", "postgres-backup"))["containers"]
    refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in offsite["env"]
        if "valueFrom" in e
    }  # fmt: skip
    assert refs == {
        "RCLONE_CONFIG_OFFSITE_ACCESS_KEY_ID": {"name": "s3-keys", "key": "id"},
        "RCLONE_CONFIG_OFFSITE_SECRET_ACCESS_KEY": {"name": "s3-keys", "key": "key"},
    }
    inline = [e["name"] for e in offsite["env"] if "value" in e and SECRET_NAME.search(e["name"])]
    assert inline == []
    assert not [o for o in objects if o["kind"] == "Secret"]


def rejection(**offsite: Any) -> str:
    with pytest.raises(helm_python.HelmValuesError) as caught:
        render_with_offsite("staging", **offsite)
    return str(caught.value)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"bucket": ""}, "/backup/offsite/bucket"),
        ({"endpoint": ""}, "/backup/offsite/endpoint"),
        ({"egressCIDRs": []}, "/backup/offsite/egressCIDRs"),
        ({"credentialsSecret": {"name": ""}}, "/backup/offsite/credentialsSecret/name"),
        ({"endpoint": "s3.example.test"}, "/backup/offsite/endpoint"),
        ({"endpoint": "https://s3.example.test/bucket"}, "/backup/offsite/endpoint"),
        ({"bucket": "Chat_Backups"}, "/backup/offsite/bucket"),
        ({"egressCIDRs": ["s3.example.test"]}, "/backup/offsite/egressCIDRs/0"),
        ({"image": {"tag": "latest", "digest": ""}}, "/backup/offsite/image/tag"),
        ({"accessKey": "AKIA0000"}, "'accessKey' not allowed"),
    ],
    ids=lambda value: str(value)[:40],
)
def test_the_schema_refuses_an_incomplete_or_wrong_target(
    change: dict[str, Any], field: str
) -> None:
    message = rejection(**change)
    assert field in message, message


def test_a_disabled_target_needs_no_store() -> None:
    values = load_values("postgres", "staging")
    values["backup"]["offsite"] = {"enabled": False, "bucket": ""}
    assert render("postgres", values, "chat-staging")


@pytest.mark.parametrize(
    ("endpoint", "port"),
    [("https://s3.example.test", 443), ("http://10.0.0.5", 80), ("http://s3.lan:8333", 8333)],
)
def test_only_the_backup_job_reaches_the_store_on_the_endpoints_port(
    endpoint: str, port: int
) -> None:
    objects = render_with_offsite(
        endpoint=endpoint, egressCIDRs=["203.0.113.0/28", "2001:db8::/64"]
    )
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    backup = named(objects, "CronJob", "postgres-backup")["spec"]["jobTemplate"]["spec"]
    reached_by_backup = egress_peers(policies, backup["template"]["metadata"]["labels"])
    assert reached_by_backup == {"ns:kube-system", "postgres", "ipBlock"}
    job = named(objects, "Job", "postgres-ensure-databases")["spec"]
    assert egress_peers(policies, job["template"]["metadata"]["labels"]) == {
        "ns:kube-system",
        "postgres",
    }
    store = named(objects, "NetworkPolicy", "postgres-backup-offsite")["spec"]
    assert store["policyTypes"] == ["Egress"]
    assert store["egress"] == [
        {
            "to": [{"ipBlock": {"cidr": "203.0.113.0/28"}}, {"ipBlock": {"cidr": "2001:db8::/64"}}],
            "ports": [{"protocol": "TCP", "port": port}],
        }
    ]
