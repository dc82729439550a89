"""The CI install plan: the repository's charts installed the way Argo CD syncs them.

Order: the cluster's gateway controller, then `platform` (the namespace and its default-deny),
the Secrets the charts reference (generated per run, never in git), `postgres`, `redis`, then
every service of the catalog. Each chart is rendered with Helm (chart `values.yaml` below
`values-ci.yaml` below the images of the run) and split into Argo CD's phases: PreSync hooks
(Helm pre-install, e.g. migration Jobs), the Sync objects (sync-wave, then kind order), PostSync
hooks (Helm post-install, e.g. postgres' ensure-databases Job). A chart's phases run in order and
each waits for its objects before the next starts; so does each chart.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

INFRA_CHARTS = ("platform", "postgres", "redis")
CI_VALUES_FILE = "values-ci.yaml"
DEFAULT_NAMESPACE = "chat-ci"
# The charts' routes carry `httpRoute.host`; the CI install points it at the name the e2e client
# uses (the engine binds K3s under it; `stack up` uses localhost).
DEFAULT_HOST = "k3s"

Manifest = dict[str, Any]

# Helm's install order (pkg/release/util/kind_sorter.go), which Argo CD follows within a wave.
KIND_ORDER = (
    "PriorityClass",
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "GatewayClass",
    "Gateway",
    "HTTPRoute",
    "APIService",
)
NOTES_FILE = "NOTES.txt"
PRE_HOOKS = {"pre-install", "pre-upgrade"}
POST_HOOKS = {"post-install", "post-upgrade"}
IMAGE_REF = re.compile(
    r"^(?P<repository>[a-z0-9]+(?:[._/:-][a-z0-9]+)*?)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[a-f0-9]{64}))?$"
)
DNS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


class PlanError(ValueError):
    """The plan cannot be made; the message names the argument, file or field."""


@dataclass(frozen=True)
class Release:
    """One chart installed as one Argo CD Application would: chart folder, namespace, values."""

    chart: str
    namespace: str
    values: dict[str, Any]


@dataclass(frozen=True)
class Phase:
    """Objects applied together, then waited for, before the next phase starts."""

    release: str
    name: str  # PreSync | Sync | PostSync (CRDs, Namespace for the gateway's)
    objects: tuple[Manifest, ...]
    namespace: str | None = None  # namespaced objects without their own: the install's


def parse_images(pairs: Sequence[str]) -> dict[str, str]:
    """`--images auth=registry/auth:ci ...` as {service: reference}; errors name the argument."""
    images: dict[str, str] = {}
    for pair in pairs:
        service, sep, ref = pair.partition("=")
        if not sep or not service or not ref:
            raise PlanError(f"--images: {pair!r} is not SERVICE=IMAGE")
        if service in images:
            raise PlanError(f"--images: {service} given twice")
        image_values(ref, f"--images {service}")
        images[service] = ref
    return images


def image_values(ref: str, where: str = "image") -> dict[str, str]:
    """`repo:tag`, `repo@sha256:...` or both as the charts' `image` values."""
    match = IMAGE_REF.match(ref)
    if match is None or not (match["tag"] or match["digest"]):
        raise PlanError(f"{where}: {ref!r} is not REPOSITORY:TAG or REPOSITORY[:TAG]@sha256:DIGEST")
    return {
        "repository": match["repository"],
        "tag": match["tag"] or "ci",
        "digest": match["digest"] or "",
    }


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Helm's coalescing of values files: maps merge key by key, anything else is replaced."""
    merged = dict(base)
    for key, value in override.items():
        below = merged.get(key)
        if isinstance(value, Mapping) and isinstance(below, Mapping):
            merged[key] = deep_merge(below, value)
        else:
            merged[key] = value
    return merged


def read_ci_values(charts: Path, chart: str) -> dict[str, Any]:
    path = charts / chart / CI_VALUES_FILE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PlanError(f"{path}: cannot be read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise PlanError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise PlanError(f"{path}: expected a mapping of values, got {type(data).__name__}")
    return data


def install_releases(
    charts: Path,
    services: Sequence[str],
    images: Mapping[str, str],
    namespace: str = DEFAULT_NAMESPACE,
    host: str = DEFAULT_HOST,
) -> list[Release]:
    """Every chart of the CI install in sync order, with its values (values-ci.yaml + images).

    `services` are the catalog's names; every one needs an image and no image may be unknown.
    """
    if not DNS_NAME.match(namespace) or len(namespace) > 63:
        raise PlanError(f"--namespace: {namespace!r} is not a DNS-1123 label")
    if not DNS_NAME.match(host):
        raise PlanError(f"--host: {host!r} is not a DNS name")
    missing = [s for s in services if s not in images]
    if missing:
        raise PlanError(f"--images: no image for {', '.join(missing)} (every service is installed)")
    unknown = sorted(set(images) - set(services))
    if unknown:
        raise PlanError(f"--images: {', '.join(unknown)} is not a service of the catalog")
    releases = [Release(chart, namespace, read_ci_values(charts, chart)) for chart in INFRA_CHARTS]
    for service in services:
        values = read_ci_values(charts, service)
        overrides = {"image": image_values(images[service], f"--images {service}")}
        if "httpRoute" in values:
            overrides["httpRoute"] = {"host": host}
        releases.append(Release(service, namespace, deep_merge(values, overrides)))
    return releases


def hook_events(obj: Manifest) -> set[str]:
    annotations = obj.get("metadata", {}).get("annotations") or {}
    raw = str(annotations.get("helm.sh/hook", ""))
    return {part.strip() for part in raw.split(",") if part.strip()}


def _int_annotation(obj: Manifest, key: str) -> int:
    annotations = obj.get("metadata", {}).get("annotations") or {}
    value = str(annotations.get(key, "0"))
    try:
        return int(value)
    except ValueError as exc:
        raise PlanError(
            f"{object_name(obj)}: annotation {key}={value!r} is not an integer"
        ) from exc


def kind_rank(kind: str) -> int:
    """Known kinds in Helm's order; unknown kinds (custom resources) after them."""
    return KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)


def object_name(obj: Manifest) -> str:
    """`Kind/name`, how every message names an object."""
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def phases(release: str, objects: Iterable[Manifest]) -> list[Phase]:
    """Split rendered objects into PreSync, Sync and PostSync, each in apply order.

    Hooks sort by hook-weight, Sync objects by sync-wave; ties by kind order, then name.
    """
    pre: list[Manifest] = []
    sync: list[Manifest] = []
    post: list[Manifest] = []
    for obj in objects:
        events = hook_events(obj)
        if events & PRE_HOOKS:
            pre.append(obj)
        elif events & POST_HOOKS:
            post.append(obj)
        elif events:
            raise PlanError(f"{release}: {object_name(obj)}: unsupported hook {sorted(events)}")
        else:
            sync.append(obj)

    def order(objs: list[Manifest], weight: str) -> tuple[Manifest, ...]:
        def key(obj: Manifest) -> tuple[int, int, str]:
            return (_int_annotation(obj, weight), kind_rank(obj["kind"]), object_name(obj))

        return tuple(sorted(objs, key=key))

    found = [
        Phase(release, "PreSync", order(pre, "helm.sh/hook-weight")),
        Phase(release, "Sync", order(sync, "argocd.argoproj.io/sync-wave")),
        Phase(release, "PostSync", order(post, "helm.sh/hook-weight")),
    ]
    return [phase for phase in found if phase.objects]


def install_phases(
    components: Sequence[Phase],
    releases: Sequence[Release],
    rendered: Mapping[str, Sequence[Manifest]],
    secrets: Sequence[Manifest],
) -> list[Phase]:
    """The whole install in order: the cluster's components (PriorityClasses, gateway, operators),
    then each release's phases, the run's Secrets right after `platform` made the namespace."""
    found = list(components)
    for release in releases:
        found += phases(release.chart, rendered[release.chart])
        if release.chart == "platform" and secrets:
            found.append(Phase("ci", "Secrets", tuple(secrets)))
    return found


def split_documents(files: Mapping[str, str]) -> list[Manifest]:
    """Helm's rendered files (path -> YAML stream) as objects, in path order."""
    objects: list[Manifest] = []
    for path in sorted(files):
        for document in yaml.safe_load_all(files[path]):
            if document is None:
                continue
            if not isinstance(document, dict) or "kind" not in document:
                raise PlanError(f"{path}: rendered a document that is not a Kubernetes object")
            objects.append(document)
    return objects


def render_release(charts: Path, release: Release) -> list[Manifest]:
    """The release's objects rendered with real Helm (helm-python-sdk: the Helm SDK in-process).

    Helm enforces the chart's values.schema.json here; a violation names the field.
    """
    objects, _ = render_chart(
        charts / release.chart, release, f"charts/{release.chart} with {CI_VALUES_FILE}"
    )
    return objects


def render_chart(path: Path, release: Release, what: str) -> tuple[list[Manifest], list[Manifest]]:
    """A chart folder or .tgz rendered as an install: its objects and its crds/ CRDs."""
    import helm_python  # the Helm SDK is a large native library: loaded only when rendering

    helm_python.disable_logging()
    try:
        with helm_python.Chart.load(path) as chart:
            files = chart.render(
                release.values, name=release.chart, namespace=release.namespace, is_install=True
            )
            crds = {entry["filename"]: entry["data"] for entry in chart.crds}
    except helm_python.HelmError as exc:
        raise PlanError(f"{what}: {exc}") from exc
    # Helm keeps templates/NOTES.txt (text for people) out of the release's manifest.
    manifest = {path: text for path, text in files.items() if not path.endswith(NOTES_FILE)}
    return split_documents(manifest), split_documents(crds)


def database_services(charts: Path, releases: Sequence[Release]) -> list[str]:
    """The services with a database in the postgres release (`databases.services`)."""
    release = next((r for r in releases if r.chart == "postgres"), None)
    if release is None:
        return []
    defaults = yaml.safe_load((charts / "postgres" / "values.yaml").read_text(encoding="utf-8"))
    values = deep_merge(defaults, release.values)
    return [str(name) for name in values["databases"]["services"]]


def gateway_probe_paths(routes: Mapping[str, tuple[str, str]]) -> list[str]:
    """Each service's health check through the gateway: its route prefix (which the gateway
    strips) followed by its `health` path; {service: (route, health)} from the catalog."""
    return [f"{route.rstrip('/')}{health}" for _, (route, health) in sorted(routes.items())]
