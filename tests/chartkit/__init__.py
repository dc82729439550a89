"""Render the repository's Helm charts with real Helm code and validate what they produce.

Shared by tests/charts and tests/manifests. Rendering goes through helm-python-sdk (the Helm v4
SDK in-process), validation through kubernetes-validate's bundled schemas for the Kubernetes
version of the K3s release pinned in k3s/versions.env, and for custom resources through their CRDs'
schemas: Gateway API, cert-manager, Sealed Secrets and the Prometheus Operator with the
@kubernetes-models packages
(tests/crds, run by node), NGINX Gateway Fabric's policies with the schema below.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import helm_python
import jsonschema
import kubernetes_validate
import kubernetes_validate.utils
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHARTS = REPO / "charts"
ARGOCD = REPO / "argocd"
K3S = REPO / "k3s"
CRD_VALIDATOR = REPO / "tests" / "crds" / "validate.mjs"

APP_CHARTS = ("auth", "backend", "ai", "media-storage", "data-processor", "frontend")
INFRA_CHARTS = ("postgres", "redis", "platform")
DEPLOYABLE_CHARTS = APP_CHARTS + INFRA_CHARTS
LIBRARY_CHART = "lib"
ENVIRONMENTS = ("dev", "staging", "production", "preview")

Manifest = dict[str, Any]

helm_python.disable_logging()

# kubernetes-validate re-reads its schema files (the definitions file is several MB) on every
# call; they never change during a run, so read each once. Validation itself is untouched.
kubernetes_validate.utils.schema_contents = functools.cache(
    kubernetes_validate.utils.schema_contents
)


def k3s_version() -> str:
    """The pinned K3s release, e.g. v1.35.5+k3s1."""
    text = (K3S / "versions.env").read_text()
    match = re.search(r"^K3S_VERSION=(v\d+\.\d+\.\d+\+k3s\d+)$", text, re.MULTILINE)
    if match is None:
        raise ValueError(f"{K3S / 'versions.env'}: no K3S_VERSION=vX.Y.Z+k3sN line")
    return match.group(1)


def production_revision() -> str:
    """The commit production renders the charts at (argocd/environments/values-production.yaml)."""
    values = yaml.safe_load((ARGOCD / "environments" / "values-production.yaml").read_text())
    return str(values["revision"])


def require_full_history() -> None:
    """Skips a test that reads past commits in a shallow clone (CI's checkout by default)."""
    shallow = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--is-shallow-repository"],
        capture_output=True,
        text=True,
        check=False,
    )
    if shallow.returncode != 0 or shallow.stdout.strip() == "true":
        pytest.skip(f"needs the full git history of {REPO} (a clone with fetch-depth: 0)")


def kubernetes_version() -> str:
    """The Kubernetes version inside the pinned K3s release, e.g. 1.35.5."""
    return k3s_version().removeprefix("v").split("+", 1)[0]


def namespace_for(environment: str) -> str:
    return "preview-example" if environment == "preview" else f"chat-{environment}"


def load_values(chart: str, environment: str) -> dict[str, Any]:
    """values-<env>.yaml parsed the way `helm -f` parses it."""
    path = CHARTS / chart / f"values-{environment}.yaml"
    return helm_python.values_from_yaml(path.read_text())


@dataclass(frozen=True)
class Rendered:
    chart: str
    environment: str
    objects: tuple[Manifest, ...]

    def of_kind(self, kind: str) -> list[Manifest]:
        return [obj for obj in self.objects if obj["kind"] == kind]


def render(chart: str, values: dict[str, Any] | None, namespace: str) -> list[Manifest]:
    """Render a chart with the given user values (chart defaults below them)."""
    return render_at(CHARTS / chart, values, namespace, chart)


def render_at(
    chart_dir: Path, values: dict[str, Any] | None, namespace: str, release: str
) -> list[Manifest]:
    """Render the chart in `chart_dir` as release `release` (also argocd/environments)."""
    with helm_python.Chart.load(chart_dir) as loaded:
        files = loaded.render(values, name=release, namespace=namespace)
    objects: list[Manifest] = []
    for path, text in sorted(files.items()):
        for document in yaml.safe_load_all(text):
            if document:
                if not isinstance(document, dict):
                    raise ValueError(f"{path}: rendered a {type(document).__name__}, not an object")
                objects.append(document)
    return objects


@functools.cache
def render_environment(chart: str, environment: str) -> Rendered:
    """The chart as Argo CD renders it for an environment (values.yaml + values-<env>.yaml)."""
    objects = render(chart, load_values(chart, environment), namespace_for(environment))
    return Rendered(chart, environment, tuple(objects))


class ManifestInvalidError(AssertionError):
    """A rendered object does not match the Kubernetes schema of the pinned version."""


# Groups whose kinds the @kubernetes-models packages in tests/crds validate.
MODEL_GROUPS = frozenset(
    {
        "gateway.networking.k8s.io",
        "cert-manager.io",
        "acme.cert-manager.io",
        "bitnami.com",
        "monitoring.coreos.com",
    }
)

_NAME = {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253}
# NGINX Gateway Fabric v2.6.7's ClientSettingsPolicy (apis/v1alpha1), narrowed to the fields the
# charts use and closed (unknown fields are errors): no package ships NGF's CRD schemas.
NGF_SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    ("gateway.nginx.org/v1alpha1", "ClientSettingsPolicy"): {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {},
            "kind": {},
            "metadata": {"type": "object"},
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "required": ["targetRef"],
                "properties": {
                    "targetRef": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["group", "kind", "name"],
                        "properties": {
                            "group": {"const": "gateway.networking.k8s.io"},
                            "kind": {"enum": ["Gateway", "HTTPRoute", "GRPCRoute"]},
                            "name": _NAME,
                        },
                    },
                    "body": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "maxSize": {"type": "string", "pattern": r"^\d{1,4}(k|m|g)?$"},
                            "timeout": {"type": "string", "pattern": r"^[0-9]{1,4}(ms|s|m|h)?$"},
                        },
                    },
                },
            },
        },
        "additionalProperties": False,
    },
}


# CRDs vendored as their projects release them, since no package ships them; their schemas are
# closed as kubectl's strict field validation closes them:
# - cloudnative-pg/: CloudNativePG 1.30.0's CRDs (cloudnative-pg/cloudnative-pg@v1.30.0
#   config/crd/bases) and its Barman Cloud plugin's ObjectStore (plugin-barman-cloud@v0.14.0);
# - system-upgrade-controller/: the Plan CRD of rancher/system-upgrade-controller@v0.16.3
#   (SYSTEM_UPGRADE_CONTROLLER_VERSION), pkg/crds/yaml/generated/upgrade.cattle.io_plans.yaml,
#   the one file the release's crd.yaml is made of (scripts/package-controller: `cat
#   ./pkg/crds/yaml/*/* > dist/artifacts/crd.yaml`), for k3s/upgrade-plan.yaml.
CNPG_CRDS = REPO / "tests" / "crds" / "cloudnative-pg"
VENDORED_CRDS = (CNPG_CRDS, REPO / "tests" / "crds" / "system-upgrade-controller")
VENDORED_GROUPS = frozenset({"postgresql.cnpg.io", "barmancloud.cnpg.io", "upgrade.cattle.io"})


def _closed(schema: Any) -> Any:
    """An OpenAPI v3 schema with unknown fields refused wherever the CRD lists its fields."""
    if isinstance(schema, list):
        return [_closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    closed = {key: _closed(value) for key, value in schema.items()}
    if "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
        closed.setdefault("additionalProperties", False)
    return closed


@functools.cache
def vendored_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(p for directory in VENDORED_CRDS for p in directory.glob("*.yaml")):
        definition = yaml.safe_load(path.read_text())
        kind, group = definition["spec"]["names"]["kind"], definition["spec"]["group"]
        for version in definition["spec"]["versions"]:
            schema = _closed(version["schema"]["openAPIV3Schema"])
            # The API server owns metadata; the CRD schema only says `type: object`.
            schema["properties"]["metadata"] = {"type": "object"}
            schemas[(f"{group}/{version['name']}", kind)] = schema
    return schemas


def _vendored_problems(obj: Manifest) -> list[str]:
    schema = vendored_schemas().get((str(obj.get("apiVersion")), str(obj.get("kind"))))
    if schema is None:
        return [
            f"{_describe(obj)}: no schema for kind {obj.get('kind')} of {obj.get('apiVersion')}"
        ]
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{_describe(obj)}: {'.'.join(map(str, e.path)) or '<root>'}: {e.message}"
        for e in validator.iter_errors(obj)
    ]


def group_of(obj: Manifest) -> str:
    api_version = str(obj.get("apiVersion", ""))
    return api_version.split("/", 1)[0] if "/" in api_version else ""


def _describe(obj: Manifest) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def validate_custom_resources(objects: list[Manifest]) -> list[str]:
    """Problems of custom resources against their CRDs' schemas (one node run for all)."""
    if not objects:
        return []
    node = shutil.which("node")
    if node is None or not (CRD_VALIDATOR.parent / "node_modules").is_dir():
        raise RuntimeError(f"node and {CRD_VALIDATOR.parent}/node_modules are needed: make setup")
    result = subprocess.run(
        [node, str(CRD_VALIDATOR)],
        input=json.dumps(objects),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{CRD_VALIDATOR.name} failed: {result.stderr.strip()}")
    answers: list[str | None] = json.loads(result.stdout)
    return [f"{_describe(o)}: {a}" for o, a in zip(objects, answers, strict=True) if a]


def _ngf_problems(obj: Manifest) -> list[str]:
    schema = NGF_SCHEMAS.get((str(obj.get("apiVersion")), str(obj.get("kind"))))
    if schema is None:
        return [
            f"{_describe(obj)}: no schema for kind {obj.get('kind')} of {obj.get('apiVersion')}"
        ]
    validator = jsonschema.Draft202012Validator(schema)
    return [
        f"{_describe(obj)}: {'.'.join(map(str, e.path)) or '<root>'}: {e.message}"
        for e in validator.iter_errors(obj)
    ]


def _kubernetes_problem(obj: Manifest, version: str) -> str | None:
    name = _describe(obj)
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.SchemaNotFoundError as error:
        return f"{name}: {error.message}"
    except kubernetes_validate.ValidationError as error:
        path = ".".join(str(part) for part in error.path) or "<root>"
        return f"{name}: {path}: {error.message}"
    return None


def problems_of(objects: list[Manifest] | tuple[Manifest, ...], version: str) -> list[str]:
    """Every problem of the objects: built-in kinds against the Kubernetes schemas of `version`
    (unknown fields rejected), custom resources against their CRDs' schemas. A kind no schema
    knows is a problem, because the API server of that cluster would refuse it."""
    problems: list[str] = []
    custom: list[Manifest] = []
    for obj in objects:
        group = group_of(obj)
        if group in MODEL_GROUPS:
            custom.append(obj)
        elif group == "gateway.nginx.org":
            problems.extend(_ngf_problems(obj))
        elif group in VENDORED_GROUPS:
            problems.extend(_vendored_problems(obj))
        elif (problem := _kubernetes_problem(obj, version)) is not None:
            problems.append(problem)
    return problems + validate_custom_resources(custom)


def validate_strictly(obj: Manifest, version: str) -> None:
    """Raise ManifestInvalidError naming the object and field when `obj` is invalid."""
    problems = problems_of([obj], version)
    if problems:
        raise ManifestInvalidError("\n".join(problems))


def pod_specs(obj: Manifest) -> list[Manifest]:
    """Pod specs inside a workload object (Deployment, StatefulSet, Job, CronJob, Pod)."""
    spec = obj.get("spec", {})
    kind = obj["kind"]
    if kind == "Pod":
        return [spec]
    if kind in {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}:
        return [spec["template"]["spec"]]
    if kind == "CronJob":
        return [spec["jobTemplate"]["spec"]["template"]["spec"]]
    return []


def containers(pod_spec: Manifest) -> list[Manifest]:
    return list(pod_spec.get("initContainers", [])) + list(pod_spec.get("containers", []))


def selector_matches(selector: Manifest, labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels + matchExpressions) against a label set."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values", [])
        present = key in labels
        matched = {
            "In": present and labels[key] in values,
            "NotIn": not present or labels[key] not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }[operator]
        if not matched:
            return False
    return True


@dataclass(frozen=True)
class Peer:
    """One end of a connection: a pod (its namespace, "self" for the policies' own, and labels)
    or, with `address`, something outside the pod network (the API server, an S3 store)."""

    namespace: str = "self"
    labels: Mapping[str, str] = field(default_factory=dict)
    address: str | None = None


def _peer_matches(peer: Manifest, other: Peer) -> bool:
    """One `from`/`to` entry against the other end; the policy's own namespace is `self`."""
    if "ipBlock" in peer:
        if other.address is None:
            return False  # pod-to-pod traffic is matched by selectors, not address blocks
        address = ipaddress.ip_address(other.address)
        block = peer["ipBlock"]
        return address in ipaddress.ip_network(block["cidr"]) and not any(
            address in ipaddress.ip_network(cidr) for cidr in block.get("except", [])
        )
    if other.address is not None:
        return False  # selectors select pods only
    namespace_labels = {"kubernetes.io/metadata.name": other.namespace}
    if "namespaceSelector" in peer:
        if not selector_matches(peer["namespaceSelector"], namespace_labels):
            return False
    elif other.namespace != "self":
        return False  # a podSelector alone selects pods of the policy's own namespace
    return selector_matches(peer.get("podSelector", {}), dict(other.labels))


def _port_matches(entry: Manifest, port: int, protocol: str) -> bool:
    """One `ports` entry; named ports are not resolved (the charts use numbers)."""
    if entry.get("protocol", "TCP") != protocol:
        return False
    first = entry.get("port")
    if first is None:
        return True
    return isinstance(first, int) and first <= port <= entry.get("endPort", first)


def _policy_allows(
    policies: list[Manifest],
    direction: str,
    pod_labels: Mapping[str, str],
    other: Peer,
    port: int,
    protocol: str,
) -> bool:
    """NetworkPolicy's rules for one direction ("Ingress" or "Egress") of one pod: a pod no
    policy of that type selects is open; otherwise some rule of a selecting policy must match both
    the other end and the port (an absent or empty list matches all). Policies add up."""
    key, peers_key = direction.lower(), "from" if direction == "Ingress" else "to"
    selecting = [
        p
        for p in policies
        if direction in p["spec"].get("policyTypes", ["Ingress"])
        and selector_matches(p["spec"].get("podSelector", {}), dict(pod_labels))
    ]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"].get(key, []):
            peers, ports = rule.get(peers_key), rule.get("ports")
            if (not peers or any(_peer_matches(peer, other) for peer in peers)) and (
                not ports or any(_port_matches(entry, port, protocol) for entry in ports)
            ):
                return True
    return False


def ingress_allowed(
    policies: list[Manifest],
    pod_labels: dict[str, str],
    port: int,
    source_namespace: str,
    source_labels: dict[str, str],
) -> bool:
    """Whether the NetworkPolicies of one namespace let a TCP connection reach a pod.

    `source_namespace` is "self" for a pod of the same namespace.
    """
    source = Peer(source_namespace, source_labels)
    return _policy_allows(policies, "Ingress", pod_labels, source, port, "TCP")


def connection_allowed(
    policies: list[Manifest],
    namespace: str,
    source: Peer,
    destination: Peer,
    port: int,
    protocol: str = "TCP",
) -> bool:
    """Whether the NetworkPolicies of `namespace` let `source` open a connection to
    `destination`: the egress side when the source is a pod of that namespace, the ingress side
    when the destination is. Peers name their namespace; pods elsewhere are taken as
    unrestricted by other policies (only this namespace's are given)."""

    def seen_from_here(peer: Peer) -> Peer:
        if peer.address is None and peer.namespace == namespace:
            return Peer("self", peer.labels)
        return peer

    source, destination = seen_from_here(source), seen_from_here(destination)
    leaves_a_pod_here = source.address is None and source.namespace == "self"
    reaches_a_pod_here = destination.address is None and destination.namespace == "self"
    return (
        not leaves_a_pod_here
        or _policy_allows(policies, "Egress", source.labels, destination, port, protocol)
    ) and (
        not reaches_a_pod_here
        or _policy_allows(policies, "Ingress", destination.labels, source, port, protocol)
    )


# A CloudNativePG Cluster's references to Secrets it cannot run without: a managed role's
# passwordSecret ({name}) and an external cluster's password ({name, key}, e.g. an import source).
CNPG_SECRET_REFERENCES = frozenset({"passwordSecret", "password"})


def required_secret_keys(obj: Any) -> set[tuple[str, str]]:
    """(Secret, key) pairs a rendered object cannot start without: env secretKeyRef keys, a
    Cluster's role passwordSecret (kubernetes.io/basic-auth: username and password) and an
    external cluster's password key. Optional references aside."""
    found: set[tuple[str, str]] = set()
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key == "secretKeyRef" and not value.get("optional"):
                found.add((value["name"], value["key"]))
            elif key == "passwordSecret" and isinstance(value, dict) and "name" in value:
                found |= {(value["name"], "username"), (value["name"], "password")}
            elif key == "password" and isinstance(value, dict) and "key" in value:
                found.add((value["name"], value["key"]))
            else:
                found |= required_secret_keys(value)
    elif isinstance(obj, list):
        for item in obj:
            found |= required_secret_keys(item)
    return found


def required_secret_names(obj: Any) -> set[str]:
    """The Secrets a rendered object cannot start without (optional references aside): env
    valueFrom.secretKeyRef, envFrom.secretRef, secret volumes, and a Cluster's role and
    external-cluster passwords."""
    found: set[str] = set()
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key in {"secretKeyRef", "secretRef"} and not value.get("optional"):
                found.add(value["name"])
            elif key == "secret" and isinstance(value, dict) and "secretName" in value:
                if not value.get("optional"):
                    found.add(value["secretName"])
            elif key in CNPG_SECRET_REFERENCES and isinstance(value, dict) and "name" in value:
                found.add(value["name"])
            else:
                found |= required_secret_names(value)
    elif isinstance(obj, list):
        for item in obj:
            found |= required_secret_names(item)
    return found
