"""Faults that pass every schema but stop a real cluster from converging: a claim nobody mounts
(local-path binds on first consumer), a default-deny that hides cert-manager's HTTP-01 solver,
label values Kubernetes refuses, and migrations that race the creation of their database."""

from __future__ import annotations

import ctypes
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python
import psycopg
import pytest
import yaml
from chartkit import (
    APP_CHARTS,
    CHARTS,
    DEPLOYABLE_CHARTS,
    ENVIRONMENTS,
    K3S,
    Manifest,
    ingress_allowed,
    load_values,
    pod_specs,
    render,
    render_environment,
)
from charts.test_postgres_scripts import client_env, run_script

CHART_ENVS = [(chart, env) for chart in DEPLOYABLE_CHARTS for env in ENVIRONMENTS]
IDS = [f"{chart}-{env}" for chart, env in CHART_ENVS]
LONG_RUNNING = {"Deployment", "StatefulSet", "DaemonSet"}
# https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#syntax-and-character-set
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
SOLVER_LABELS = {"acme.cert-manager.io/http01-solver": "true"}
SOLVER_PORT = 8089


# --- 1. a claim that only a CronJob uses stays Pending until its first run ---


def claims_mounted_by_long_running_pods(objects: list[Manifest]) -> set[str]:
    return {
        volume["persistentVolumeClaim"]["claimName"]
        for obj in objects
        if obj["kind"] in LONG_RUNNING
        for spec in pod_specs(obj)
        for volume in spec.get("volumes", [])
        if "persistentVolumeClaim" in volume
    }


@pytest.mark.parametrize(("chart", "environment"), CHART_ENVS, ids=IDS)
def test_every_claim_is_mounted_by_a_pod_that_starts_at_sync(chart: str, environment: str) -> None:
    """K3s's local-path StorageClass binds a claim only when a pod using it is scheduled: a claim
    used only by a CronJob stays Pending (Argo CD: Progressing) until the first run, and the first
    sync, its PostSync hooks and every later wave wait for it."""
    objects = list(render_environment(chart, environment).objects)
    mounted = claims_mounted_by_long_running_pods(objects)
    for claim in (o for o in objects if o["kind"] == "PersistentVolumeClaim"):
        assert claim["metadata"]["name"] in mounted, (
            f"{chart}/{environment}: PVC {claim['metadata']['name']} has no long-running consumer"
        )


def test_claim_check_sees_a_claim_only_a_cronjob_mounts() -> None:
    objects = list(render_environment("postgres", "production").objects)
    without_server = [o for o in objects if o["kind"] != "StatefulSet"]
    assert "postgres-backups" not in claims_mounted_by_long_running_pods(without_server)
    assert any(o["kind"] == "CronJob" for o in without_server)


# --- 2. cert-manager's HTTP-01 solver behind the namespace's default-deny ---


def namespace_policies(environment: str) -> list[Manifest]:
    return [
        obj
        for chart in DEPLOYABLE_CHARTS
        for obj in render_environment(chart, environment).of_kind("NetworkPolicy")
    ]


def edge_namespace(environment: str) -> str:
    """The one namespace every service accepts its public traffic from."""
    (namespace,) = {
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for chart in APP_CHARTS
        for rule in render_environment(chart, environment).of_kind("NetworkPolicy")[0]["spec"][
            "ingress"
        ]
        for peer in rule["from"]
        # the gateway's pods (Prometheus's scrape comes from another namespace)
        if "gateway.networking.k8s.io/gateway-name"
        in peer.get("podSelector", {}).get("matchLabels", {})
    }
    return str(namespace)


def chart_values(chart: str) -> dict[str, Any]:
    return dict(yaml.safe_load((CHARTS / chart / "values.yaml").read_text()))


def issuing_gateway() -> Manifest:
    """The Gateway cert-manager issues for (its gateway-shim makes each Certificate in the
    Gateway's namespace, so the HTTP-01 solver pods run there)."""
    gateways: list[Manifest] = [
        o
        for o in yaml.safe_load_all((K3S / "gateway.yaml").read_text())
        if o
        and o["kind"] == "Gateway"
        and "cert-manager.io/cluster-issuer" in o["metadata"].get("annotations", {})
    ]
    (gateway,) = gateways
    return gateway


def policies_in(namespace: str) -> list[Manifest]:
    policies: list[Manifest] = [
        o
        for o in yaml.safe_load_all((K3S / "gateway.yaml").read_text())
        if o and o["kind"] == "NetworkPolicy" and o["metadata"]["namespace"] == namespace
    ]
    return policies


def test_the_gateway_reaches_cert_managers_http01_solver_where_it_runs() -> None:
    gateway = issuing_gateway()
    policies = policies_in(gateway["metadata"]["namespace"])
    nginx = {"gateway.networking.k8s.io/gateway-name": gateway["metadata"]["name"]}
    assert ingress_allowed(policies, SOLVER_LABELS, SOLVER_PORT, "self", nginx)
    # ... and only the gateway's pods, only on the solver's port.
    assert not ingress_allowed(policies, SOLVER_LABELS, SOLVER_PORT, "self", {"app": "other"})
    assert not ingress_allowed(policies, SOLVER_LABELS, SOLVER_PORT, "chat-staging", nginx)
    assert not ingress_allowed(policies, SOLVER_LABELS, 22, "self", nginx)


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_no_environment_holds_a_policy_for_solver_pods(environment: str) -> None:
    """Solver pods never run in an environment's namespace: a policy there for them is dead."""
    for policy in namespace_policies(environment):
        selector = policy["spec"]["podSelector"]
        assert "acme.cert-manager.io/http01-solver" not in selector.get("matchLabels", {}), (
            f"{environment}: {policy['metadata']['name']} selects solver pods"
        )


def test_solver_check_sees_the_default_deny() -> None:
    policies = namespace_policies("staging")
    deny_only = [p for p in policies if p["metadata"]["name"] == "default-deny"]
    assert not ingress_allowed(deny_only, SOLVER_LABELS, SOLVER_PORT, "nginx-gateway", {})
    assert ingress_allowed([], SOLVER_LABELS, SOLVER_PORT, "nginx-gateway", {})


# --- 5. image tags the schema accepts must make valid label values ---


def label_values(node: Any) -> Iterator[tuple[str, str]]:
    """Every (key, value) under any `labels` or `matchLabels` map of a rendered object."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in {"labels", "matchLabels"} and isinstance(value, dict):
                yield from ((str(k), str(v)) for k, v in value.items())
            else:
                yield from label_values(value)
    elif isinstance(node, list):
        for item in node:
            yield from label_values(item)


def valid_label_value(value: str) -> bool:
    return len(value) <= 63 and LABEL_VALUE.match(value) is not None


BOUNDARY_TAGS = [
    "a" * 63,
    "a" * 64,
    "b" * 128,
    "1.2.3_",
    "_1.2.3",
    "feat-x-" + "y" * 55 + "-1a2b3c4",  # a long branch slug: the cut lands on a "-"
    "v" + "." * 62 + "z",
    "___",
]


@pytest.mark.parametrize("chart", ["backend", "postgres", "redis"])
@pytest.mark.parametrize("tag", BOUNDARY_TAGS, ids=lambda t: f"{len(t)}-{t[:4]}-{t[-2:]}")
def test_every_tag_the_schema_accepts_makes_valid_labels(chart: str, tag: str) -> None:
    values = load_values(chart, "staging")
    values["image"] = {**values.get("image", {}), **chart_values(chart)["image"], "tag": tag}
    objects = render(chart, values, "chat-staging")  # the schema accepts the tag
    for obj in objects:
        for key, value in label_values(obj):
            assert valid_label_value(value), f"{obj['kind']}: {key}={value!r}"
    version = objects[0]["metadata"]["labels"]["app.kubernetes.io/version"]
    if valid_label_value(tag):
        assert version == tag
    elif tag.strip("_.-"):
        assert version
        assert version in tag


def test_a_tag_longer_than_docker_allows_is_rejected_by_the_schema() -> None:
    values = load_values("backend", "staging")
    values["image"] = {**values["image"], "tag": "a" * 129}
    with pytest.raises(helm_python.HelmValuesError, match="/image/tag"):
        render("backend", values, "chat-staging")


def test_label_check_rejects_what_kubernetes_rejects() -> None:
    for bad in ("a" * 64, "ends-with_", "-starts", "has space"):
        assert not valid_label_value(bad), bad


# --- 6. a migration waits for its own database, whatever order the syncs took ---


def migration_job(chart: str, environment: str) -> Manifest | None:
    jobs = render_environment(chart, environment).of_kind("Job")
    return next((j for j in jobs if j["metadata"]["name"] == f"{chart}-migrate"), None)


def uses_database(chart: str) -> bool:
    return any(e["name"] == "DATABASE_URL" for e in chart_values(chart)["secretEnv"])


@pytest.mark.parametrize("environment", ENVIRONMENTS)
@pytest.mark.parametrize("chart", APP_CHARTS)
def test_a_migration_waits_for_its_database_first(chart: str, environment: str) -> None:
    job = migration_job(chart, environment)
    if job is None or not uses_database(chart):
        assert not uses_database(chart) or job is None
        return
    spec = job["spec"]["template"]["spec"]
    (wait,) = spec["initContainers"]
    (migrate,) = spec["containers"]
    assert wait["name"] == "wait-for-database"
    assert wait["image"] == migrate["image"]
    assert wait["env"] == migrate["env"]
    assert wait["command"][:2] == ["python", "-c"]
    assert wait["command"][-1] == "DATABASE_URL"
    assert job["spec"]["activeDeadlineSeconds"] > 0, "the wait must be bounded"


def die_with_parent() -> None:
    """Runs in the child: SIGKILL it when the test runner dies, however it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


def read_line(process: subprocess.Popen[str], deadline: float) -> str:
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line or time.monotonic() < deadline, "the wait script printed nothing"
    return line


def test_the_wait_script_returns_once_ensure_databases_created_the_database(
    postgres_admin_url: str, tmp_path: Path
) -> None:
    """The rendered init container's script, run for real: it keeps waiting while the database
    does not exist, and returns as soon as postgres's own ensure-databases.sh created it."""
    service = f"svc-{uuid.uuid4().hex[:8]}"
    role = service.replace("-", "_")
    password = uuid.uuid4().hex
    (tmp_path / service).write_text(password)
    admin = psycopg.conninfo.conninfo_to_dict(postgres_admin_url)
    url = f"postgresql://{role}:{password}@{admin['host']}:{admin.get('port', 5432)}/{role}"
    wait = migration_job("backend", "staging")
    assert wait is not None
    script = wait["spec"]["template"]["spec"]["initContainers"][0]["command"]
    env = {"PATH": os.environ["PATH"], "DATABASE_URL": url}
    process = subprocess.Popen(
        [sys.executable, *script[1:]],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=die_with_parent,
    )
    try:
        deadline = time.monotonic() + 60
        first = read_line(process, deadline)
        assert first.startswith("waiting for the database:"), first
        assert password not in first
        assert process.poll() is None, "returned before the database existed"
        created = run_script(
            "ensure-databases.sh",
            client_env(postgres_admin_url, SERVICES=service, PASSWORDS_DIR=str(tmp_path)),
        )
        assert created.returncode == 0, created.stderr
        assert process.wait(timeout=60) == 0
        assert process.stdout is not None
        assert "the database is ready" in process.stdout.read()
    finally:
        process.kill()
        process.wait()
        with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{role}" WITH (FORCE)')
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')
