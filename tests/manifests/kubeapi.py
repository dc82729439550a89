"""A recording stand-in for the Kubernetes API server, for running the real `kubectl` client (and
so the real scripts) against it.

It answers what kubectl asks: legacy discovery (/api, /apis, /api/v1, /apis/<group>/<version>),
/version, server-side apply (PATCH application/apply-patch+yaml), create (POST), get and list
(with a metadata.name field selector, which `kubectl wait` uses). Custom resources are served only
once their CustomResourceDefinition was received, as a real API server does; a CRD is Established
and a Deployment rolled out (Available) as soon as it is stored. Every object it receives is
recorded in order (`received`), and a request for a kind nobody defined is recorded in `unknown`
and answered 404.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from harness.fakehttp import JsonServer, Reply, Request, Response

Obj = dict[str, Any]


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


def _builtin(group: str, version: str, namespaced: bool, *kinds: str) -> list[Resource]:
    def plural(kind: str) -> str:
        lower = kind.lower()
        if lower.endswith("y"):
            return lower[:-1] + "ies"
        return lower + ("es" if lower.endswith(("s", "ss")) else "s")

    return [Resource(group, version, kind, plural(kind), namespaced) for kind in kinds]


BUILTIN = [
    *_builtin("", "v1", False, "Namespace", "Node", "PersistentVolume"),
    *_builtin(
        "",
        "v1",
        True,
        "ConfigMap",
        "Secret",
        "Service",
        "ServiceAccount",
        "ResourceQuota",
        "LimitRange",
        "Pod",
        "PersistentVolumeClaim",
        "Event",
    ),
    *_builtin("apps", "v1", True, "Deployment", "StatefulSet", "DaemonSet"),
    *_builtin("batch", "v1", True, "Job", "CronJob"),
    *_builtin("rbac.authorization.k8s.io", "v1", True, "Role", "RoleBinding"),
    *_builtin("rbac.authorization.k8s.io", "v1", False, "ClusterRole", "ClusterRoleBinding"),
    *_builtin("scheduling.k8s.io", "v1", False, "PriorityClass"),
    *_builtin("apiextensions.k8s.io", "v1", False, "CustomResourceDefinition"),
    *_builtin(
        "admissionregistration.k8s.io",
        "v1",
        False,
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    ),
    *_builtin("networking.k8s.io", "v1", True, "NetworkPolicy", "Ingress"),
    *_builtin("policy", "v1", True, "PodDisruptionBudget"),
    *_builtin("coordination.k8s.io", "v1", True, "Lease"),
    *_builtin("autoscaling", "v2", True, "HorizontalPodAutoscaler"),
]


@dataclass
class KubeApi:
    """The API's state: the resources it serves, the objects it stores, what it received."""

    resources: list[Resource] = field(default_factory=lambda: list(BUILTIN))
    objects: dict[tuple[str, str, str, str], Obj] = field(default_factory=dict)
    received: list[Obj] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    # (namespace, name) of Deployments whose pods never get ready (a Secret never issued, ...).
    stalled: set[tuple[str, str]] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}}
        node["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}
        self.objects[("", "nodes", "", "node-1")] = node

    # --- discovery ---

    def group_versions(self) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {}
        for resource in self.resources:
            versions = groups.setdefault(resource.group, [])
            if resource.version not in versions:
                versions.append(resource.version)
        return groups

    def group_list(self) -> Obj:
        groups = []
        for group, versions in self.group_versions().items():
            if not group:
                continue
            entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
            groups.append({"name": group, "versions": entries, "preferredVersion": entries[0]})
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def resource_list(self, group: str, version: str) -> Obj | None:
        served = [r for r in self.resources if (r.group, r.version) == (group, version)]
        if not served:
            return None
        verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
        entries = [
            {
                "name": r.plural,
                "singularName": r.kind.lower(),
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": verbs,
                "shortNames": ["crd"] if r.kind == "CustomResourceDefinition" else [],
            }
            for r in served
        ]
        group_version = served[0].group_version
        return {"kind": "APIResourceList", "groupVersion": group_version, "resources": entries}

    def openapi(self, parts: list[str]) -> Reply:
        """Just enough OpenAPI v3 for kubectl to see that the server validates fields itself
        (a PATCH with the fieldValidation parameter), so it sends `fieldValidation=Strict`."""
        if not parts:
            index: dict[str, dict[str, str]] = {}
            for group, versions in self.group_versions().items():
                for version in versions:
                    prefix = f"apis/{group}/{version}" if group else f"api/{version}"
                    index[prefix] = {"serverRelativeURL": f"/openapi/v3/{prefix}"}
            return 200, {"paths": index}
        group, version = (parts[1], parts[2]) if parts[0] == "apis" else ("", parts[1])
        paths: dict[str, Obj] = {}
        for r in self.resources:
            if (r.group, r.version) != (group, version):
                continue
            prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
            scope = "/namespaces/{namespace}" if r.namespaced else ""
            gvk = {"group": r.group, "version": r.version, "kind": r.kind}
            parameter = {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}
            paths[f"{prefix}{scope}/{r.plural}/{{name}}"] = {
                "patch": {"parameters": [parameter], "x-kubernetes-group-version-kind": gvk}
            }
        return 200, {
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": "v"},
            "paths": paths,
        }

    def find(self, group: str, version: str, plural: str) -> Resource | None:
        for resource in self.resources:
            if (resource.group, resource.version, resource.plural) == (group, version, plural):
                return resource
        return None

    # --- storage ---

    def store(self, resource: Resource, namespace: str, obj: Obj) -> Obj:
        obj = json.loads(json.dumps(obj))
        obj.setdefault("metadata", {})
        if resource.namespaced:
            obj["metadata"]["namespace"] = namespace
        obj["metadata"].setdefault("uid", f"uid-{len(self.received)}")
        obj["metadata"]["resourceVersion"] = str(len(self.received) + 1)
        self.received.append(obj)
        if resource.kind == "CustomResourceDefinition":
            self.define(obj)
            obj["status"] = {"conditions": [{"type": "Established", "status": "True"}]}
        if resource.kind == "Deployment":
            ready = (namespace, obj["metadata"]["name"]) not in self.stalled
            obj["status"] = rolled_out(obj, ready)
        key = (resource.group, resource.plural, namespace, obj["metadata"]["name"])
        self.objects[key] = obj
        return obj

    def define(self, crd: Obj) -> None:
        spec = crd["spec"]
        for version in spec["versions"]:
            if not version.get("served", True):
                continue
            resource = Resource(
                spec["group"],
                version["name"],
                spec["names"]["kind"],
                spec["names"]["plural"],
                spec["scope"] == "Namespaced",
            )
            if resource not in self.resources:
                self.resources.append(resource)

    def kinds_received(self) -> list[tuple[str, str]]:
        """(kind, name) of every object received, in order."""
        return [(o["kind"], o["metadata"]["name"]) for o in self.received]

    def of_kind(self, kind: str) -> list[Obj]:
        return [o for o in self.received if o["kind"] == kind]

    # --- HTTP ---

    def answer(self, request: Request) -> Reply | Response:
        with self.lock:
            return self._answer(request)

    def _answer(self, request: Request) -> Reply | Response:
        url = urlsplit(request.path)
        parts = [p for p in url.path.split("/") if p]
        query = parse_qs(url.query)
        if parts == ["version"]:
            return 200, {"major": "1", "minor": "34", "gitVersion": "v1.34.2+k3s1"}
        if parts == ["api"]:
            return 200, {"kind": "APIVersions", "versions": ["v1"]}
        if parts == ["apis"]:
            return 200, self.group_list()
        if parts[:2] == ["openapi", "v3"]:
            return self.openapi(parts[2:])
        if parts[:1] == ["api"]:
            group, rest = "", parts[1:]
        elif parts[:1] == ["apis"] and len(parts) >= 3:
            group, rest = parts[1], parts[2:]
        else:
            return 404, _status(404, f"no such path {url.path}")
        version, rest = rest[0], rest[1:]
        if not rest:
            listing = self.resource_list(group, version)
            return (200, listing) if listing else (404, _status(404, "no such group version"))
        namespace = ""
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        plural, name = rest[0], (rest[1] if len(rest) > 1 else "")
        resource = self.find(group, version, plural)
        if resource is None:
            self.unknown.append(f"{request.method} {url.path}")
            return 404, _status(404, f"the server could not find the requested resource {plural}")
        return self._object_request(request, resource, namespace, name, query)

    def _object_request(
        self,
        request: Request,
        resource: Resource,
        namespace: str,
        name: str,
        query: dict[str, list[str]],
    ) -> Reply | Response:
        key = (resource.group, resource.plural, namespace, name)
        if request.method == "GET" and name:
            found = self.objects.get(key)
            return (200, found) if found else (404, _status(404, f"{name} not found"))
        if request.method == "GET" and query.get("watch", [""])[0] in {"1", "true"}:
            # The watch-list protocol: the matching objects, then the bookmark that ends the
            # initial events; kubectl wait has its answer by then and stops.
            listing = self._list(resource, namespace, query)
            events = [{"type": "ADDED", "object": o} for o in listing["items"]]
            end = {"k8s.io/initial-events-end": "true"}
            bookmark = {
                "apiVersion": resource.group_version,
                "kind": resource.kind,
                "metadata": {
                    "resourceVersion": listing["metadata"]["resourceVersion"],
                    "annotations": end,
                },
            }
            events.append({"type": "BOOKMARK", "object": bookmark})
            return Response(
                200,
                "\n".join(json.dumps(e) for e in events).encode(),
                {"Content-Type": "application/json"},
            )
        if request.method == "GET":
            return 200, self._list(resource, namespace, query)
        if request.method in {"PATCH", "PUT"}:
            obj = _body(request)
            return (200 if key in self.objects else 201), self.store(resource, namespace, obj)
        if request.method == "POST":
            obj = _body(request)
            if (
                resource.group,
                resource.plural,
                namespace,
                obj["metadata"]["name"],
            ) in self.objects:
                return 409, _status(409, "already exists")
            return 201, self.store(resource, namespace, obj)
        return 405, _status(405, f"{request.method} is not served here")

    def _list(self, resource: Resource, namespace: str, query: dict[str, list[str]]) -> Obj:
        wanted = ""
        for selector in query.get("fieldSelector", []):
            if selector.startswith("metadata.name="):
                wanted = selector.split("=", 1)[1]
        items = [
            obj
            for (group, plural, ns, name), obj in self.objects.items()
            if (group, plural) == (resource.group, resource.plural)
            and (not namespace or ns == namespace)
            and (not wanted or name == wanted)
        ]
        return {
            "kind": f"{resource.kind}List",
            "apiVersion": resource.group_version,
            "metadata": {"resourceVersion": str(len(self.received) + 1)},
            "items": items,
        }


def rolled_out(deployment: Obj, ready: bool = True) -> Obj:
    """The status the controllers give a Deployment once its pods are ready, or while none is
    (there are no pods here): what `kubectl wait --for=condition=Available` waits for."""
    replicas = deployment.get("spec", {}).get("replicas", 1)
    deployment["metadata"]["generation"] = 1
    counts = ("readyReplicas", "availableReplicas") if ready else ("unavailableReplicas",)
    available = {
        "type": "Available",
        "status": str(ready),
        "reason": "MinimumReplicasAvailable" if ready else "MinimumReplicasUnavailable",
    }
    return {
        "observedGeneration": 1,
        "replicas": replicas,
        "updatedReplicas": replicas,
        **dict.fromkeys(counts, replicas),
        "conditions": [available],
    }


def _body(request: Request) -> Obj:
    # kubectl sends JSON, also for application/apply-patch+yaml (JSON is YAML).
    body: Obj = json.loads(request.body)
    return body


def _status(code: int, message: str) -> Obj:
    reason = {404: "NotFound", 409: "AlreadyExists"}.get(code, "")
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


@contextmanager
def recording_api(directory: Path) -> Iterator[tuple[KubeApi, Path]]:
    """A running KubeApi and a kubeconfig for it, written in `directory`."""
    api = KubeApi()
    with JsonServer(api.answer) as server:
        kubeconfig = directory / "kubeconfig"
        kubeconfig.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "k3s", "cluster": {"server": server.url}}],
                    "users": [{"name": "admin", "user": {"token": "test"}}],
                    "contexts": [{"name": "k3s", "context": {"cluster": "k3s", "user": "admin"}}],
                    "current-context": "k3s",
                }
            )
        )
        yield api, kubeconfig
