"""`python -m ci.cluster install|wait|diagnose|e2e --kubeconfig PATH ...`: the platform on any
Kubernetes cluster (the pipeline's ephemeral K3s, k3d, kind, a K3s host), as Argo CD syncs it.

  install   render every chart with Helm (helm-python-sdk, no helm binary) and apply it with the
            kubernetes client (server-side apply), phase by phase, waiting for each
  wait      wait until everything in the namespace is ready (deadline, reasons on expiry)
  diagnose  write events, pod statuses and container logs (with previous runs) to a directory
  e2e       run tests/e2e against the gateway (E2E_BASE_URL), JUnit XML into the output

Every subcommand records how long it took in OUTPUT/timings.json. Exit status: 0 done, 1 a
wait failed or expired (the message names each object and why) or e2e failed, 2 bad usage or
input (naming the argument, file or field).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ci.core.catalog import CatalogError, load_catalog
from ci.core.cluster_diagnostics import (
    EVENTS_FILE,
    PODS_FILE,
    events_text,
    log_requests,
    pod_table,
)
from ci.core.cluster_plan import (
    DEFAULT_HOST,
    DEFAULT_NAMESPACE,
    Manifest,
    Phase,
    PlanError,
    Release,
    database_services,
    install_releases,
    object_name,
    parse_images,
    phases,
    render_release,
)
from ci.core.cluster_readiness import Snapshot, Verdict, judge, verdicts
from ci.core.cluster_secrets import generate_secrets, secret_manifest, secret_needs

USAGE_ERROR = 2
FAILED = 1
FIELD_MANAGER = "ci-cluster"
POLL_SECONDS = 2.0
REQUEST_TIMEOUT = 30  # seconds for every API call
WAITED_KINDS = {"Deployment", "StatefulSet", "Job", "PersistentVolumeClaim"}
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
    wait = command("wait", "wait until every workload in the namespace is ready")
    wait.add_argument("--timeout", type=positive, default=300.0, help="seconds to wait")
    command("diagnose", "write events, pod statuses and container logs to OUTPUT/diagnostics")
    e2e = command("e2e", "run tests/e2e against the gateway")
    e2e.add_argument("--repo", type=Path, default=Path.cwd(), help="repository root")
    e2e.add_argument("--base-url", required=True, help="the gateway, e.g. http://k3s")
    return p


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
        )

    def apply(self, obj: Manifest) -> None:
        """Server-side apply (idempotent); a hook with before-hook-creation is deleted first."""
        from kubernetes.dynamic import DynamicClient

        dynamic = DynamicClient(self.api)  # type: ignore[no-untyped-call]
        resource = dynamic.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        namespace = self.namespace if resource.namespaced else None
        name = obj["metadata"]["name"]
        if "before-hook-creation" in _hook_delete_policy(obj):
            self._delete_and_forget(resource, name, namespace)
        resource.server_side_apply(
            body=obj,
            name=name,
            namespace=namespace,
            field_manager=FIELD_MANAGER,
            force_conflicts=True,
            _request_timeout=REQUEST_TIMEOUT,
        )

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

    return Snapshot(
        deployments=keep("Deployment", snapshot.deployments),
        statefulsets=keep("StatefulSet", snapshot.statefulsets),
        jobs=keep("Job", snapshot.jobs),
        pods=keep("Pod", snapshot.pods),
        pvcs=keep("PersistentVolumeClaim", snapshot.pvcs),
        events=snapshot.events,
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
        secrets = generate_secrets(needs, database_services(args.repo / "charts", releases))
    except PlanError as exc:
        raise UsageError(str(exc)) from exc
    write_manifests(args.output, rendered)
    cluster = Cluster.connect(args.kubeconfig, args.namespace)
    started = time.monotonic()
    for release in releases:
        for phase in phases(release.chart, rendered[release.chart]):
            apply_and_wait(cluster, phase, args.timeout)
        if release.chart == "platform":  # the namespace exists now; the Secrets come next
            for name, data in secrets.items():
                cluster.apply(secret_manifest(name, args.namespace, data))
            print(f"ci.cluster: {len(secrets)} Secrets generated for this run", file=sys.stderr)
    record_timing(args.output, "installed", time.monotonic() - started)


def apply_and_wait(cluster: Cluster, phase: Phase, timeout: float) -> None:
    what = f"{phase.release} {phase.name}"
    for obj in phase.objects:
        cluster.apply(obj)
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
    print(f"ci.cluster: diagnostics of {args.namespace} in {folder}", file=sys.stderr)


def e2e(args: argparse.Namespace) -> int:
    """tests/e2e against the gateway; pytest's exit status (1 when a test failed)."""
    if not (args.repo / "tests" / "e2e").is_dir():
        raise UsageError(f"--repo: {args.repo} has no tests/e2e")
    args.output.mkdir(parents=True, exist_ok=True)
    junit = args.output.resolve() / "junit.xml"
    started = time.monotonic()
    done = subprocess.run(  # noqa: S603 - our own interpreter and a fixed argument list
        [sys.executable, "-m", "pytest", "tests/e2e", "-q", f"--junitxml={junit}"],
        cwd=args.repo,
        env={**os.environ, "E2E_BASE_URL": args.base_url},
        check=False,
    )
    record_timing(args.output, "e2e", time.monotonic() - started)
    return FAILED if done.returncode else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "install":
            install(args)
        elif args.command == "wait":
            wait(args)
        elif args.command == "diagnose":
            diagnose(args)
        else:
            return e2e(args)
    except UsageError as exc:
        print(f"ci.cluster {args.command}: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except WaitFailedError as exc:
        print(f"ci.cluster {args.command}: {exc}", file=sys.stderr)
        return FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
