"""`python -m ci.cluster install|wait|diagnose|e2e --kubeconfig PATH ...`: the platform on any
Kubernetes cluster (the pipeline's ephemeral K3s, k3d, kind, a K3s host), as Argo CD syncs it.

  install   render every chart with Helm (helm-python-sdk, no helm binary) and apply it with the
            kubernetes client (server-side apply), phase by phase, waiting for each; with
            --gateway / --cloudnative-pg first what k3s/bootstrap.sh installs on a host
  wait      wait until everything in the namespace is ready (deadline, reasons on expiry)
  diagnose  write events, pod statuses and container logs (with previous runs) to a directory
  e2e       run tests/e2e against the gateway (E2E_BASE_URL), JUnit XML into the output
  run       all of it for a fresh cluster: node Ready, install --gateway --cloudnative-pg, wait,
            e2e, and diagnose when anything failed (what `dagger call integration` runs)
  name-archives  name image archives (Container.as_tarball) for K3s's auto-import directory

Every subcommand records how long it took in OUTPUT/timings.json. Exit status: 0 done, 1 a
wait failed or expired (the message names each object and why) or e2e failed, 2 bad usage or
input (naming the argument, file or field).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from ci.core.catalog import CatalogError, load_catalog
from ci.core.cluster_cnpg import (
    CNPG_API_GROUP,
    CNPG_CHART,
    CNPG_NAMESPACE,
    CNPG_RELEASE,
    CNPG_REPO,
    CNPG_SHA256_PIN,
    CNPG_VALUES_FILE,
    CNPG_VERSION_PIN,
    needs_operator,
    operator_phases,
    operator_values,
)
from ci.core.cluster_diagnostics import (
    CNPG_DIAGNOSTICS,
    EVENTS_FILE,
    LOGS_DIR,
    PODS_FILE,
    events_text,
    log_requests,
    pod_table,
)
from ci.core.cluster_gateway import (
    GATEWAY_API_CRD_FILES,
    GATEWAY_FILE,
    GATEWAY_NAMESPACE,
    NGF_CHART,
    NGF_RELEASE,
    NGF_VALUES_FILE,
    POLICIES_FILE,
    VERSIONS_FILE,
    gateway_api_crd_pin,
    gateway_api_crd_urls,
    gateway_phases,
    pinned,
    priority_classes,
    read_versions,
    verify_sha256,
)
from ci.core.cluster_images import name_archive
from ci.core.cluster_plan import (
    DEFAULT_HOST,
    DEFAULT_NAMESPACE,
    Manifest,
    Phase,
    PlanError,
    Release,
    database_services,
    gateway_probe_paths,
    install_phases,
    install_releases,
    object_name,
    parse_images,
    render_chart,
    render_release,
    split_documents,
)
from ci.core.cluster_readiness import (
    Snapshot,
    Verdict,
    judge,
    missing_images,
    node_verdict,
    nodes_unready,
    verdicts,
)
from ci.core.cluster_secrets import (
    database_host,
    generate_secrets,
    secret_manifests,
    secret_needs,
)

USAGE_ERROR = 2
FAILED = 1
FIELD_MANAGER = "ci-cluster"
POLL_SECONDS = 2.0
REQUEST_TIMEOUT = 30  # seconds for every API call
WAITED_KINDS = {"Deployment", "StatefulSet", "Job", "PersistentVolumeClaim", "Cluster", "Database"}
INSTANCE_LABEL = "app.kubernetes.io/instance"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


class UsageError(Exception):
    """Bad arguments or input: exit 2."""


class WaitFailedError(Exception):
    """A wait failed or its deadline expired: exit 1."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ci.cluster",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=summary, description=summary)
        sub.add_argument("--kubeconfig", type=Path, required=True, help="kubeconfig of the cluster")
        sub.add_argument("--namespace", default=DEFAULT_NAMESPACE, help="namespace of the install")
        sub.add_argument("--output", type=Path, default=Path("cluster-output"), help="reports dir")
        return sub

    install = command("install", "render and apply every chart, phase by phase, with waits")
    install.add_argument("--repo", type=Path, default=Path.cwd(), help="repository root")
    install.add_argument(
        "--images", nargs="+", required=True, metavar="SERVICE=IMAGE", help="image per service"
    )
    install.add_argument("--host", default=DEFAULT_HOST, help="host name the routes answer to")
    install.add_argument("--timeout", type=positive, default=300.0, help="seconds per wait")
    install.add_argument(
        "--gateway",
        action="store_true",
        help="install the gateway first (Gateway API CRDs, NGINX Gateway Fabric, "
        "k3s/gateway-dev.yaml at the versions of k3s/versions.env); leave out when the cluster "
        "has one (a K3s host bootstrapped by k3s/bootstrap.sh)",
    )
    install.add_argument(
        "--cloudnative-pg",
        action="store_true",
        help="install the CloudNativePG operator first when charts/postgres renders its objects "
        "(chart and values of k3s/, pinned in k3s/versions.env); leave out when the cluster has "
        "it (a K3s host bootstrapped by k3s/bootstrap.sh)",
    )
    install.add_argument(
        "--cloudnative-pg-repo",
        default=CNPG_REPO,
        metavar="URL",
        help="the Helm repository of CloudNativePG's chart, e.g. a mirror (default: %(default)s)",
    )
    wait = command("wait", "wait until every workload in the namespace is ready")
    wait.add_argument("--timeout", type=positive, default=300.0, help="seconds to wait")
    command("diagnose", "write events, pod statuses and container logs to OUTPUT/diagnostics")
    run = command("run", "node Ready, install --gateway, wait, e2e; diagnose on failure")
    run.add_argument("--repo", type=Path, default=Path.cwd(), help="repository root")
    run.add_argument(
        "--images", nargs="+", required=True, metavar="SERVICE=IMAGE", help="image per service"
    )
    run.add_argument("--host", default=DEFAULT_HOST, help="host name the routes answer to")
    run.add_argument("--base-url", required=True, help="the gateway, e.g. http://k3s")
    run.add_argument("--timeout", type=positive, default=300.0, help="seconds per wait")
    run.add_argument(
        "--server",
        default="",
        help="API server URL to put into the kubeconfig (e.g. https://k3s:6443)",
    )
    run.add_argument(
        "--nodes", type=positive_int, default=1, help="nodes to wait for Ready (server + agents)"
    )
    run.add_argument("--no-e2e", action="store_true", help="install and wait only (stack up)")
    run.add_argument(
        "--consume-kubeconfig",
        action="store_true",
        help="delete --kubeconfig once read (the engine's shared volume keeps no credentials)",
    )
    names = commands.add_parser("name-archives", help="name image archives for K3s's auto-import")
    names.add_argument(
        "--archive", nargs="+", required=True, metavar="NAME=PATH", help="image name and archive"
    )
    names.add_argument("--out", type=Path, required=True, help="directory for the named archives")
    e2e = command("e2e", "run tests/e2e against the gateway")
    e2e.add_argument("--repo", type=Path, default=Path.cwd(), help="repository root")
    e2e.add_argument("--base-url", required=True, help="the gateway, e.g. http://k3s")
    e2e.add_argument(
        "--timeout", type=positive, default=180.0, help="seconds for the gateway to route"
    )
    return p


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


# --- the API --------------------------------------------------------------------------------


@dataclass
class Cluster:
    """One cluster and namespace, through the kubernetes client."""

    api: Any  # kubernetes.client.ApiClient
    namespace: str
    _dynamic: Any = None

    @classmethod
    def connect(cls, kubeconfig: Path, namespace: str) -> Cluster:
        from kubernetes import config
        from kubernetes.config.config_exception import ConfigException

        if not kubeconfig.is_file():
            raise UsageError(f"--kubeconfig: {kubeconfig} is not a file")
        try:
            api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
        except (ConfigException, yaml.YAMLError, KeyError, TypeError) as exc:
            raise UsageError(f"--kubeconfig: {kubeconfig}: {exc}") from exc
        return cls(api, namespace)

    def snapshot(self) -> Snapshot:
        from kubernetes import client

        ns, timeout = self.namespace, REQUEST_TIMEOUT
        apps, batch, core = (
            client.AppsV1Api(self.api),
            client.BatchV1Api(self.api),
            client.CoreV1Api(self.api),
        )
        return Snapshot(
            deployments=apps.list_namespaced_deployment(ns, _request_timeout=timeout).items,
            statefulsets=apps.list_namespaced_stateful_set(ns, _request_timeout=timeout).items,
            jobs=batch.list_namespaced_job(ns, _request_timeout=timeout).items,
            pods=core.list_namespaced_pod(ns, _request_timeout=timeout).items,
            pvcs=core.list_namespaced_persistent_volume_claim(ns, _request_timeout=timeout).items,
            events=core.list_namespaced_event(ns, _request_timeout=timeout).items,
            clusters=self.cnpg_objects("clusters"),
            databases=self.cnpg_objects("databases"),
        )

    def cnpg_objects(self, plural: str) -> list[dict[str, Any]]:
        """CloudNativePG's objects in the namespace; none when its CRDs are not installed."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        api = client.CustomObjectsApi(self.api)
        try:
            found = api.list_namespaced_custom_object(
                CNPG_API_GROUP, "v1", self.namespace, plural, _request_timeout=REQUEST_TIMEOUT
            )
        except ApiException as exc:
            if exc.status == 404:
                return []
            raise
        items = found.get("items") if isinstance(found, dict) else None  # the client types: object
        return list(items or [])

    def resource(self, obj: Manifest) -> Any:
        """The API resource of `obj` (discovery is cached; refreshed once for new CRDs)."""
        from kubernetes.dynamic import DynamicClient
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        if self._dynamic is None:
            self._dynamic = DynamicClient(self.api)  # type: ignore[no-untyped-call]
        try:
            return self._dynamic.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        except ResourceNotFoundError:
            self._dynamic.resources.invalidate_cache()
            return self._dynamic.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])

    def apply(self, obj: Manifest) -> None:
        """Server-side apply (idempotent); a hook with before-hook-creation is deleted first.
        A namespaced object goes to its own namespace, else to this one. A refusal names the
        object and the API server's reason."""
        from kubernetes.client.exceptions import ApiException
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        try:
            self._apply(obj)
        except ResourceNotFoundError as exc:
            raise WaitFailedError(
                f"{object_name(obj)}: the cluster has no {obj['apiVersion']} {obj['kind']} "
                "(its CRDs are missing: install --gateway brings the Gateway API and NGF ones, "
                "--cloudnative-pg CloudNativePG's)"
            ) from exc
        except ApiException as exc:
            raise WaitFailedError(
                f"{object_name(obj)}: apply refused: {exc.status} {exc.reason}: {_api_message(exc)}"
            ) from exc

    def _apply(self, obj: Manifest) -> None:
        resource = self.resource(obj)
        where = None
        if resource.namespaced:
            where = obj["metadata"].get("namespace") or self.namespace
        name = obj["metadata"]["name"]
        if "before-hook-creation" in _hook_delete_policy(obj):
            self._delete_and_forget(resource, name, where)
        resource.server_side_apply(
            body=obj,
            name=name,
            namespace=where,
            field_manager=FIELD_MANAGER,
            force_conflicts=True,
            _request_timeout=REQUEST_TIMEOUT,
        )

    def wait_established(self, crds: Iterable[Manifest], timeout: float) -> None:
        """Until every CRD is Established (its kinds can be created)."""
        from kubernetes import client

        api = client.ApiextensionsV1Api(self.api)
        pending = {obj["metadata"]["name"] for obj in crds}
        deadline = time.monotonic() + timeout
        while pending:
            for name in sorted(pending):
                crd = api.read_custom_resource_definition(name, _request_timeout=REQUEST_TIMEOUT)
                conditions = crd.status.conditions if crd.status else None
                if any(c.type == "Established" and c.status == "True" for c in conditions or []):
                    pending.discard(name)
            if pending and time.monotonic() >= deadline:
                names = ", ".join(f"CustomResourceDefinition/{n}" for n in sorted(pending))
                raise WaitFailedError(f"deadline expired, not Established: {names}")
            if pending:
                time.sleep(POLL_SECONDS)

    def _delete_and_forget(self, resource: Any, name: str, namespace: str | None) -> None:
        from kubernetes.client.exceptions import ApiException

        body = {"propagationPolicy": "Foreground"}
        try:
            resource.delete(
                name=name, namespace=namespace, body=body, _request_timeout=REQUEST_TIMEOUT
            )
        except ApiException as exc:
            if exc.status == 404:
                return
            raise
        deadline = time.monotonic() + REQUEST_TIMEOUT
        while time.monotonic() < deadline:
            try:
                resource.get(name=name, namespace=namespace, _request_timeout=REQUEST_TIMEOUT)
            except ApiException as exc:
                if exc.status == 404:
                    return
                raise
            time.sleep(POLL_SECONDS)
        raise WaitFailedError(f"{resource.kind}/{name}: still present after deletion")

    def log(self, pod: str, container: str, previous: bool) -> str:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        try:
            text: str = client.CoreV1Api(self.api).read_namespaced_pod_log(
                pod,
                self.namespace,
                container=container,
                previous=previous,
                _request_timeout=REQUEST_TIMEOUT,
            )
        except ApiException as exc:
            return f"(log unavailable: {exc.status} {exc.reason})\n"
        return text


def _api_message(exc: Any) -> str:
    """The Status message of an API error body, else the body itself."""
    try:
        return str(json.loads(exc.body)["message"])
    except (TypeError, ValueError, KeyError):
        return str(exc.body)


def _hook_delete_policy(obj: Manifest) -> set[str]:
    raw = (obj["metadata"].get("annotations") or {}).get("helm.sh/hook-delete-policy", "")
    return {part.strip() for part in str(raw).split(",")}


# --- waiting --------------------------------------------------------------------------------


Selector = Callable[[str, dict[str, str]], bool]  # (subject, labels) -> under watch?


def wait_until_ready(
    read: Callable[[], Snapshot],
    what: str,
    timeout: float,
    expected: Iterable[str] = (),
    selected: Selector | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> list[Verdict]:
    """Poll until `judge` decides; raises WaitFailedError with its reason."""
    expected = list(expected)
    deadline = clock() + timeout
    while True:
        snapshot = read()
        if selected is not None:
            snapshot = _select(snapshot, selected)
        found = verdicts(snapshot, expected)
        outcome = judge(found, clock(), deadline, what)
        if outcome.failure is not None:
            raise WaitFailedError(outcome.failure)
        if outcome.done:
            return found
        time.sleep(POLL_SECONDS)


def _select(snapshot: Snapshot, selected: Selector) -> Snapshot:
    def keep(kind: str, items: list[Any]) -> list[Any]:
        return [
            item
            for item in items
            if selected(f"{kind}/{item.metadata.name}", item.metadata.labels or {})
        ]

    def keep_custom(kind: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            item
            for item in items
            if selected(f"{kind}/{item['metadata']['name']}", item["metadata"].get("labels") or {})
        ]

    return Snapshot(
        deployments=keep("Deployment", snapshot.deployments),
        statefulsets=keep("StatefulSet", snapshot.statefulsets),
        jobs=keep("Job", snapshot.jobs),
        pods=keep("Pod", snapshot.pods),
        pvcs=keep("PersistentVolumeClaim", snapshot.pvcs),
        events=snapshot.events,
        clusters=keep_custom("Cluster", snapshot.clusters),
        databases=keep_custom("Database", snapshot.databases),
    )


def phase_selector(phase: Phase) -> tuple[list[str], Selector]:
    """What a phase waits for: its workloads and claims by name; the pods of its hook Jobs, or in
    the Sync phase every pod and claim of the release (a StatefulSet's PVCs included)."""
    subjects = [object_name(o) for o in phase.objects if o["kind"] in WAITED_KINDS]
    wanted = set(subjects)
    hook_jobs = {o["metadata"]["name"] for o in phase.objects if o["kind"] == "Job"}

    def selected(subject: str, labels: dict[str, str]) -> bool:
        kind = subject.split("/", 1)[0]
        if subject in wanted:
            return True
        if phase.name != "Sync":
            return kind == "Pod" and labels.get(JOB_NAME_LABEL) in hook_jobs
        return (
            kind in {"Pod", "PersistentVolumeClaim"} and labels.get(INSTANCE_LABEL) == phase.release
        )

    return subjects, selected


# --- commands -------------------------------------------------------------------------------


def record_timing(output: Path, name: str, seconds: float) -> None:
    """Merge one figure into OUTPUT/timings.json (written whole, atomically)."""
    output.mkdir(parents=True, exist_ok=True)
    path = output / "timings.json"
    timings = json.loads(path.read_text()) if path.is_file() else {}
    timings[name] = round(seconds, 1)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(timings, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def plan_install(args: argparse.Namespace) -> tuple[list[Release], dict[str, list[Manifest]]]:
    """Releases and their rendered objects; every input problem is a UsageError."""
    try:
        catalog = load_catalog(args.repo)
        images = parse_images(args.images)
        releases = install_releases(
            args.repo / "charts", catalog.names(), images, args.namespace, args.host
        )
        rendered = {r.chart: render_release(args.repo / "charts", r) for r in releases}
    except (CatalogError, PlanError) as exc:
        raise UsageError(str(exc)) from exc
    return releases, rendered


def write_manifests(output: Path, rendered: dict[str, list[Manifest]]) -> None:
    folder = output / "manifests"
    folder.mkdir(parents=True, exist_ok=True)
    for chart, objects in rendered.items():
        (folder / f"{chart}.yaml").write_text(yaml.safe_dump_all(objects, sort_keys=False))


def install(args: argparse.Namespace) -> None:
    releases, rendered = plan_install(args)
    try:
        needs = secret_needs(o for objects in rendered.values() for o in objects)
        databases = database_services(args.repo / "charts", releases)
        secrets = generate_secrets(needs, databases, database_host(rendered["postgres"]))
    except PlanError as exc:
        raise UsageError(str(exc)) from exc
    write_manifests(args.output, rendered)
    cluster = Cluster.connect(args.kubeconfig, args.namespace)
    started = time.monotonic()
    components = cluster_components(args, rendered)
    generated = secret_manifests(secrets, needs, args.namespace)
    plan = install_phases(components, releases, rendered, generated)
    for done, phase in enumerate(plan, start=1):
        apply_and_wait(cluster, phase, args.timeout)
        if components and done == len(components):
            record_timing(args.output, "components installed", time.monotonic() - started)
    record_timing(args.output, "installed", time.monotonic() - started)


def cluster_components(
    args: argparse.Namespace, rendered: dict[str, list[Manifest]]
) -> list[Phase]:
    """What k3s/bootstrap.sh installs on a host, for a cluster without it: the PriorityClasses,
    with --gateway the gateway, with --cloudnative-pg the operator when the charts need it."""
    objects = [o for found in rendered.values() for o in found]
    operator = args.cloudnative_pg and needs_operator(objects)
    if not (args.gateway or operator):
        return []
    found = [priority_classes(split_documents({POLICIES_FILE: _read(args.repo / POLICIES_FILE)}))]
    warnings: list[str] = []
    with tempfile.TemporaryDirectory(prefix="ci-cluster-") as work:
        try:
            if args.gateway:
                gateway, warned = load_gateway(args.repo, Path(work))
                found, warnings = [*found, *gateway], [*warnings, *warned]
            if operator:
                cnpg, warned = load_operator(args.repo, Path(work), args.cloudnative_pg_repo)
                found, warnings = [*found, *cnpg], [*warnings, *warned]
        except PlanError as exc:
            raise UsageError(str(exc)) from exc
    for warning in warnings:
        print(f"ci.cluster: WARNING: {warning}", file=sys.stderr)
    write_manifests(args.output, {"components": [o for p in found for o in p.objects]})
    return found


def load_gateway(repo: Path, work: Path) -> tuple[list[Phase], list[str]]:
    """The gateway's phases from the pinned downloads, and warnings about unpinned ones."""
    import helm_python

    versions = read_versions(_read(repo / VERSIONS_FILE))
    # One file per CRD, each checked against its own pin and parsed on its own.
    urls = gateway_api_crd_urls(versions)
    crd_files = {name: download(url) for name, url in zip(GATEWAY_API_CRD_FILES, urls, strict=True)}
    warnings = [
        verify_sha256(data, versions, gateway_api_crd_pin(name), f"Gateway API {name}")
        for name, data in crd_files.items()
    ]
    version = pinned(versions, "NGF_CHART_VERSION")
    try:
        helm_python.pull(NGF_CHART, version=version, destination=work)
    except helm_python.HelmError as exc:
        raise WaitFailedError(f"helm pull {NGF_CHART} {version}: {exc}") from exc
    archive = next(work.glob("*.tgz"))
    chart_pin = verify_sha256(archive.read_bytes(), versions, "NGF_CHART_SHA256", archive.name)
    values = yaml.safe_load(_read(repo / NGF_VALUES_FILE))
    release = Release(NGF_RELEASE, GATEWAY_NAMESPACE, values)
    controller, chart_crds = render_chart(archive, release, archive.name)
    ordered = {
        f"{i:02d}-{name}.yaml": data.decode() for i, (name, data) in enumerate(crd_files.items())
    }
    crds = split_documents(ordered) + chart_crds
    gateway = split_documents({GATEWAY_FILE: _read(repo / GATEWAY_FILE)})
    found = [w for w in [*warnings, chart_pin] if w]
    return gateway_phases(crds, controller, gateway), found


def load_operator(
    repo: Path, work: Path, repo_url: str = CNPG_REPO
) -> tuple[list[Phase], list[str]]:
    """CloudNativePG's phases from its chart, pulled at the pinned version and checked against
    the pinned sha256 before it is rendered; warnings about an unpinned checksum."""
    import helm_python

    versions = read_versions(_read(repo / VERSIONS_FILE))
    version = pinned(versions, CNPG_VERSION_PIN)
    folder = work / CNPG_RELEASE
    folder.mkdir(parents=True, exist_ok=True)
    try:
        helm_python.pull(CNPG_CHART, repo_url=repo_url, version=version, destination=folder)
    except helm_python.HelmError as exc:
        raise WaitFailedError(f"helm pull {CNPG_CHART} {version} from {repo_url}: {exc}") from exc
    archive = folder / f"{CNPG_CHART}-{version}.tgz"
    warning = verify_sha256(archive.read_bytes(), versions, CNPG_SHA256_PIN, archive.name)
    host_values = yaml.safe_load(_read(repo / CNPG_VALUES_FILE)) or {}
    if not isinstance(host_values, dict):
        raise PlanError(f"{CNPG_VALUES_FILE}: expected a mapping of values")
    release = Release(CNPG_RELEASE, CNPG_NAMESPACE, operator_values(host_values))
    objects, chart_crds = render_chart(archive, release, archive.name)
    return operator_phases([*chart_crds, *objects]), [warning] if warning else []


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot be read: {exc.strerror}") from exc


def download(url: str, attempts: int = 3) -> bytes:
    """GET with a timeout, retried with backoff; a failure names the URL."""
    import httpx

    for attempt in range(1, attempts + 1):
        try:
            response = httpx.get(url, timeout=30, follow_redirects=True)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            if attempt == attempts:
                raise WaitFailedError(f"download {url}: {exc}") from exc
            time.sleep(2**attempt)
        else:
            return response.content
    raise AssertionError("unreachable")


def apply_and_wait(cluster: Cluster, phase: Phase, timeout: float) -> None:
    """Apply a phase's objects in order, then wait for them (in the phase's namespace)."""
    what = f"{phase.release} {phase.name}"
    if phase.namespace:
        cluster = dataclasses.replace(cluster, namespace=phase.namespace)
    for obj in phase.objects:
        cluster.apply(obj)
    if phase.name == "CRDs":
        cluster.wait_established(phase.objects, timeout)
    expected, selected = phase_selector(phase)
    if expected:
        wait_until_ready(cluster.snapshot, what, timeout, expected, selected)
    print(f"ci.cluster: {what}: {len(phase.objects)} objects ready", file=sys.stderr)


def wait(args: argparse.Namespace) -> None:
    cluster = Cluster.connect(args.kubeconfig, args.namespace)
    started = time.monotonic()
    found = wait_until_ready(cluster.snapshot, f"namespace {args.namespace}", args.timeout)
    record_timing(args.output, "ready", time.monotonic() - started)
    print(f"ci.cluster: {len(found)} objects ready in {args.namespace}", file=sys.stderr)


def diagnose(args: argparse.Namespace) -> None:
    cluster = Cluster.connect(args.kubeconfig, args.namespace)
    folder = args.output / "diagnostics"
    snapshot = cluster.snapshot()
    (folder / "logs").mkdir(parents=True, exist_ok=True)
    (folder / EVENTS_FILE).write_text(events_text(snapshot.events))
    (folder / PODS_FILE).write_text(pod_table(snapshot.pods))
    found = verdicts(snapshot)
    (folder / "verdicts.txt").write_text("".join(f"{v.state.value}\t{v}\n" for v in found))
    for request in log_requests(snapshot.pods):
        (folder / request.path).write_text(
            cluster.log(request.pod, request.container, request.previous)
        )
    if snapshot.clusters or snapshot.databases:
        diagnose_cloudnativepg(cluster, snapshot, folder)
    print(f"ci.cluster: diagnostics of {args.namespace} in {folder}", file=sys.stderr)


def diagnose_cloudnativepg(cluster: Cluster, snapshot: Snapshot, folder: Path) -> None:
    """The Clusters and Databases with the operator's status, and the operator's own logs
    (why a Cluster never got healthy is told there)."""
    found = [*snapshot.clusters, *snapshot.databases]
    (folder / CNPG_DIAGNOSTICS).write_text(yaml.safe_dump_all(found, sort_keys=False))
    operator = dataclasses.replace(cluster, namespace=CNPG_NAMESPACE)
    logs = folder / LOGS_DIR / CNPG_NAMESPACE
    logs.mkdir(parents=True, exist_ok=True)
    for request in log_requests(operator.snapshot().pods):
        text = operator.log(request.pod, request.container, request.previous)
        (logs / Path(request.path).name).write_text(text)


def wait_for_routes(base_url: str, paths: Sequence[str], timeout: float) -> None:
    """Until every path answers 200 through the gateway (it programs routes asynchronously)."""
    import httpx

    deadline = time.monotonic() + timeout
    last: dict[str, str] = {}
    with httpx.Client(base_url=base_url, timeout=10) as client:
        pending = list(paths)
        while pending:
            for path in list(pending):
                try:
                    status = client.get(path).status_code
                except httpx.HTTPError as exc:
                    last[path] = f"{type(exc).__name__}: {exc}"
                    continue
                if status == 200:
                    pending.remove(path)
                last[path] = f"HTTP {status}"
            if pending and time.monotonic() >= deadline:
                lines = "\n".join(f"  {base_url}{p}: {last[p]}" for p in pending)
                raise WaitFailedError(f"gateway: deadline expired, routes not answering:\n{lines}")
            if pending:
                time.sleep(POLL_SECONDS)


def e2e(args: argparse.Namespace) -> int:
    """tests/e2e against the gateway; pytest's exit status (1 when a test failed)."""
    if not (args.repo / "tests" / "e2e").is_dir():
        raise UsageError(f"--repo: {args.repo} has no tests/e2e")
    try:
        catalog = load_catalog(args.repo)
    except CatalogError as exc:
        raise UsageError(str(exc)) from exc
    args.output.mkdir(parents=True, exist_ok=True)
    junit = args.output.resolve() / "junit.xml"
    started = time.monotonic()
    routes = {s.name: (s.route, s.health) for s in catalog.services}
    wait_for_routes(args.base_url, gateway_probe_paths(routes), args.timeout)
    done = subprocess.run(  # noqa: S603 - our own interpreter and a fixed argument list
        [sys.executable, "-m", "pytest", "tests/e2e", "-q", f"--junitxml={junit}"],
        cwd=args.repo,
        env={**os.environ, "E2E_BASE_URL": args.base_url},
        check=False,
    )
    record_timing(args.output, "e2e", time.monotonic() - started)
    return FAILED if done.returncode else 0


def wait_for_kubeconfig(path: Path, server: str, timeout: float) -> Path:
    """The file K3s writes once its API serves, copied with `server` as the API address."""
    deadline = time.monotonic() + timeout
    while not path.is_file() or not path.stat().st_size:
        if time.monotonic() >= deadline:
            raise WaitFailedError(f"deadline expired: K3s wrote no kubeconfig at {path}")
        time.sleep(POLL_SECONDS)
    config = yaml.safe_load(path.read_text())
    if server:
        for cluster in config.get("clusters", []):
            cluster["cluster"]["server"] = server
    copy = Path(tempfile.mkdtemp(prefix="ci-cluster-")) / "kubeconfig"
    copy.write_text(yaml.safe_dump(config))
    copy.chmod(0o600)
    return copy


def wait_for_nodes(cluster: Cluster, timeout: float, expected: int = 1) -> None:
    """Until `expected` nodes are registered and every one is Ready; API errors while K3s
    starts count as waiting."""
    from kubernetes import client
    from urllib3.exceptions import HTTPError

    deadline = time.monotonic() + timeout
    reason = "no node registered yet"
    while True:
        try:
            nodes = client.CoreV1Api(cluster.api).list_node(_request_timeout=REQUEST_TIMEOUT).items
            unready = nodes_unready([node_verdict(node) for node in nodes], expected)
            if unready is None:
                return
            reason = unready
        except (client.ApiException, HTTPError) as exc:
            reason = f"API not answering yet: {exc}"
        if time.monotonic() >= deadline:
            raise WaitFailedError(f"cluster: deadline expired: {reason}")
        time.sleep(POLL_SECONDS)


def parse_images_or_exit(pairs: Sequence[str]) -> dict[str, str]:
    try:
        return parse_images(pairs)
    except PlanError as exc:
        raise UsageError(str(exc)) from exc


def wait_for_images(cluster: Cluster, refs: Iterable[str], timeout: float) -> None:
    """Until the node lists every image of the run (imported from the auto-import directory)."""
    from kubernetes import client

    refs = list(refs)
    deadline = time.monotonic() + timeout
    while True:
        nodes = client.CoreV1Api(cluster.api).list_node(_request_timeout=REQUEST_TIMEOUT).items
        missing = missing_images(nodes, refs)
        if not missing:
            return
        if time.monotonic() >= deadline:
            raise WaitFailedError(
                f"images: deadline expired, not on the node: {', '.join(missing)}"
            )
        time.sleep(POLL_SECONDS)


def run(args: argparse.Namespace) -> int:
    """The whole integration on a fresh cluster; diagnostics when anything failed, even when
    K3s never served (the output directory exists from the start: the caller exports it)."""
    started = time.monotonic()
    args.output.mkdir(parents=True, exist_ok=True)
    try:
        written = args.kubeconfig
        args.kubeconfig = wait_for_kubeconfig(written, args.server, args.timeout)
        if args.consume_kubeconfig:
            written.unlink(missing_ok=True)
        cluster = Cluster.connect(args.kubeconfig, args.namespace)
        wait_for_nodes(cluster, args.timeout, args.nodes)
        record_timing(args.output, "cluster ready", time.monotonic() - started)
        wait_for_images(cluster, parse_images_or_exit(args.images).values(), args.timeout)
        record_timing(args.output, "images loaded", time.monotonic() - started)
        args.gateway = args.cloudnative_pg = True
        args.cloudnative_pg_repo = CNPG_REPO
        install(args)
        wait(args)
        code = 0 if args.no_e2e else e2e(args)
    except WaitFailedError as exc:
        diagnose_after_failure(args, str(exc))
        raise
    if code:
        diagnose_after_failure(args, f"the e2e suite exited {code}")
    return code


def diagnose_after_failure(args: argparse.Namespace, reason: str) -> None:
    """Diagnostics plus the rendered manifests; a failure here never hides the first one."""
    folder = args.output / "diagnostics"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "failure.txt").write_text(f"{reason}\n")
    try:
        diagnose(args)
    except Exception as exc:
        print(f"ci.cluster: diagnostics incomplete: {exc}", file=sys.stderr)
    manifests = args.output / "manifests"
    if manifests.is_dir():
        shutil.copytree(manifests, folder / "manifests", dirs_exist_ok=True)


def name_archives(args: argparse.Namespace) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    for pair in args.archive:
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            raise UsageError(f"--archive: {pair!r} is not NAME=PATH")
        target = args.out / f"{name.rsplit('/', 1)[-1].replace(':', '_')}.tar"
        try:
            name_archive(Path(path), target, name)
        except PlanError as exc:
            raise UsageError(f"--archive {name}: {exc}") from exc


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "install":
            install(args)
        elif args.command == "wait":
            wait(args)
        elif args.command == "diagnose":
            diagnose(args)
        elif args.command == "run":
            return run(args)
        elif args.command == "name-archives":
            name_archives(args)
        else:
            return e2e(args)
    except UsageError as exc:
        print(f"ci.cluster {args.command}: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except WaitFailedError as exc:
        print(f"ci.cluster {args.command}: {exc}", file=sys.stderr)
        return FAILED
    except (ApiException, HTTPError) as exc:
        print(f"ci.cluster {args.command}: the cluster did not answer: {exc}", file=sys.stderr)
        return FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
