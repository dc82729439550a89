"""`ci.cluster install --cloudnative-pg` end to end through the real kubernetes client against a
stand-in API server: discovery, server-side apply, CRD and readiness reads answered as an API
server answers when everything it is given becomes ready at once. What is checked is what the
install sends, in which order and where; the answers are the only stand-in."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from chartkit import REPO
from ci.cluster import main
from ci.core.catalog import load_catalog
from ci.core.cluster_cnpg import CNPG_VERSION_PIN
from ci.core.cluster_gateway import VERSIONS_FILE, read_versions
from harness.fakehttp import JsonServer, Request, Response

from cluster.cnpg_chart import build_chart, chart_repository, repo_with_pin, sha256
from cluster.recorded import kubeconfig_for

CLUSTER_SCOPED = {
    "Namespace",
    "PriorityClass",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
}
CORE = "v1"


def plural(kind: str) -> str:
    lower = kind.lower()
    if lower.endswith("y"):
        return f"{lower[:-1]}ies"
    return f"{lower}es" if lower.endswith("s") else f"{lower}s"


def ready_status(obj: dict[str, Any]) -> dict[str, Any] | None:
    """What the controllers would have reported once the object is up."""
    spec = obj.get("spec") or {}
    kind = obj["kind"]
    if kind == "Deployment":
        n = spec.get("replicas", 1)
        return {
            "observedGeneration": 1,
            "replicas": n,
            "updatedReplicas": n,
            "readyReplicas": n,
            "availableReplicas": n,
        }
    if kind == "StatefulSet":
        n = spec.get("replicas", 1)
        return {
            "observedGeneration": 1,
            "replicas": n,
            "readyReplicas": n,
            "currentRevision": "r1",
            "updateRevision": "r1",
        }
    if kind == "Job":
        return {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}
    if kind == "PersistentVolumeClaim":
        return {"phase": "Bound"}
    if kind == "Cluster":
        n = spec.get("instances", 1)
        return {"phase": "Cluster in healthy state", "instances": n, "readyInstances": n}
    if kind == "Database":
        return {"observedGeneration": 1, "applied": True}
    if kind == "CustomResourceDefinition":
        return {"conditions": [{"type": "Established", "status": "True"}]}
    return None


@dataclass
class StandInApi:
    """Discovery for the kinds it is told of and those of the CRDs applied to it; applies
    recorded in order and kept; lists and reads answer with what was applied, each with its
    ready status."""

    kinds: dict[str, set[str]]  # apiVersion -> kinds
    applied: list[tuple[str, str | None, str]] = field(default_factory=list)
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)  # path -> object
    requests: list[str] = field(default_factory=list)  # METHOD path, discovery left out

    def resources(self, api_version: str) -> dict[str, Any]:
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": api_version,
            "resources": [
                {
                    "name": plural(kind),
                    "singularName": kind.lower(),
                    "namespaced": kind not in CLUSTER_SCOPED,
                    "kind": kind,
                    "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
                }
                for kind in sorted(self.kinds.get(api_version, set()))
            ],
        }

    def groups(self) -> dict[str, Any]:
        versions: dict[str, list[str]] = {}
        for api_version in self.kinds:
            if "/" in api_version:
                group, version = api_version.split("/")
                versions.setdefault(group, []).append(version)
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [
                {
                    "name": group,
                    "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in found],
                    "preferredVersion": {
                        "groupVersion": f"{group}/{found[0]}",
                        "version": found[0],
                    },
                }
                for group, found in sorted(versions.items())
            ],
        }

    def answer(self, request: Request) -> tuple[int, object] | Response:
        url = urlsplit(request.path)
        path = url.path
        if path == "/api":
            return 200, {"kind": "APIVersions", "versions": [CORE]}
        if path == "/apis":
            return 200, self.groups()
        if path == "/api/v1":
            return 200, self.resources(CORE)
        parts = path.strip("/").split("/")
        if parts[0] == "apis" and len(parts) == 3:
            return 200, self.resources(f"{parts[1]}/{parts[2]}")
        self.requests.append(f"{request.method} {path}")
        if request.method == "PATCH":
            return self.apply(path, request)
        if request.method == "DELETE":
            return 404, {"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404}
        if path in self.objects:
            return 200, self.objects[path]
        return 200, self.list(path)

    def apply(self, path: str, request: Request) -> tuple[int, object]:
        assert request.header("Content-Type") == "application/apply-patch+yaml"
        assert parse_qs(urlsplit(request.path).query)["fieldManager"] == ["ci-cluster"]
        body = request.json()
        meta = body["metadata"]
        namespace = None
        if body["kind"] not in CLUSTER_SCOPED:
            namespace = path.split("/namespaces/")[1].split("/")[0]
        self.applied.append((body["kind"], namespace, meta["name"]))
        stored = copy.deepcopy(body)
        stored["metadata"] = {**meta, "generation": 1, "namespace": namespace}
        status = ready_status(stored)
        if status is not None:
            stored["status"] = status
        self.objects[path] = stored
        if body["kind"] == "CustomResourceDefinition":  # its kind is served from now on
            spec = body["spec"]
            for version in spec["versions"]:
                api_version = f"{spec['group']}/{version['name']}"
                self.kinds.setdefault(api_version, set()).add(spec["names"]["kind"])
        return 200, stored

    def list(self, path: str) -> dict[str, Any]:
        items = [o for p, o in self.objects.items() if p.rsplit("/", 1)[0] == path]
        return {"kind": "List", "apiVersion": "v1", "metadata": {}, "items": items}


SERVICES = load_catalog(REPO).names()
IMAGES = [f"{name}=ci.local/chat-platform/{name}:run-42" for name in SERVICES]
# Kinds the charts of the CI install render, beyond the operator chart's (which the test adds).
CHART_KINDS = {
    "v1": {
        "Namespace",
        "Secret",
        "ConfigMap",
        "Service",
        "ServiceAccount",
        "PersistentVolumeClaim",
        "ResourceQuota",
        "LimitRange",
    },
    "apps/v1": {"Deployment", "StatefulSet"},
    "batch/v1": {"Job", "CronJob"},
    "networking.k8s.io/v1": {"NetworkPolicy"},
    "policy/v1": {"PodDisruptionBudget"},
    "autoscaling/v2": {"HorizontalPodAutoscaler"},
    "rbac.authorization.k8s.io/v1": {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"},
    "scheduling.k8s.io/v1": {"PriorityClass"},
    "apiextensions.k8s.io/v1": {"CustomResourceDefinition"},
    "admissionregistration.k8s.io/v1": {"ValidatingWebhookConfiguration"},
    "gateway.networking.k8s.io/v1": {"HTTPRoute"},
    "gateway.nginx.org/v1alpha1": {"ClientSettingsPolicy"},
}


def repository(tmp_path: Path, pin: str) -> Path:
    """The repository with k3s/ pinned to the local chart: charts and services as they are."""
    root = repo_with_pin(tmp_path, pin)
    for name in ("charts", "services"):
        (root / name).symlink_to(REPO / name)
    return root


def test_install_applies_the_operator_then_the_charts_and_waits_for_the_cluster(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    version = read_versions((REPO / VERSIONS_FILE).read_text())[CNPG_VERSION_PIN]
    archive = build_chart(tmp_path / "charts", version)
    repo = repository(tmp_path, sha256(archive))
    api = StandInApi(copy.deepcopy(CHART_KINDS))
    kubeconfig = tmp_path / "kubeconfig"

    with chart_repository(archive) as (charts, _), JsonServer(api.answer) as server:
        kubeconfig.write_text(yaml.safe_dump(kubeconfig_for(server.url)))
        argv = ["install", "--kubeconfig", str(kubeconfig), "--repo", str(repo), "--images"]
        argv += [*IMAGES, "--cloudnative-pg", "--cloudnative-pg-repo", charts]
        code = main([*argv, "--output", str(tmp_path / "out"), "--timeout", "60"])

    err = capsys.readouterr().err
    assert code == 0, err
    order = [(kind, name) for kind, _, name in api.applied]

    def first(kind: str, name: str | None = None) -> int:
        return next(i for i, (k, n) in enumerate(order) if k == kind and name in (None, n))

    def last(kind: str) -> int:
        return max(i for i, (k, _) in enumerate(order) if k == kind)

    assert order[:4] == [
        ("PriorityClass", name)
        for name in ("chat-platform", "chat-production", "chat-staging", "chat-preview")
    ]
    assert last("CustomResourceDefinition") < first("Namespace", "cnpg-system")
    assert first("Namespace", "cnpg-system") < first("Deployment", "cnpg-cloudnative-pg")
    assert first("Deployment", "cnpg-cloudnative-pg") < first("Namespace", "chat-ci")
    assert first("Namespace", "chat-ci") < first("Secret") < first("Cluster", "postgres")
    assert first("Cluster", "postgres") < first("Database") < first("StatefulSet", "redis")
    assert last("Database") < min(first("Deployment", service) for service in SERVICES)
    # Every CRD was read back (Established) before the operator was applied.
    operator = api.requests.index(
        "PATCH /apis/apps/v1/namespaces/cnpg-system/deployments/cnpg-cloudnative-pg"
    )
    crds = [name for kind, name in order if kind == "CustomResourceDefinition"]
    for name in crds:
        read = f"GET /apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
        assert api.requests.index(read) < operator
    # The operator's Deployment was read as ready before platform's first object was applied.
    platform = api.requests.index("PATCH /api/v1/namespaces/chat-ci")
    deployments = "GET /apis/apps/v1/namespaces/cnpg-system/deployments"
    assert operator < api.requests.index(deployments) < platform
    where = {(kind, name): namespace for kind, namespace, name in api.applied}
    assert where[("Deployment", "cnpg-cloudnative-pg")] == "cnpg-system"
    assert where[("Cluster", "postgres")] == "chat-ci"
    role = api.objects["/api/v1/namespaces/chat-ci/secrets/auth-postgres-role"]
    url = api.objects["/api/v1/namespaces/chat-ci/secrets/auth-database"]["stringData"]["url"]
    assert role["type"] == "kubernetes.io/basic-auth"
    assert role["stringData"]["username"] == "auth"
    assert url == f"postgresql://auth:{role['stringData']['password']}@postgres-rw:5432/auth"
    assert role["stringData"]["password"] not in err
    assert set(json.loads((tmp_path / "out" / "timings.json").read_text())) == {
        "components installed",
        "installed",
    }
