"""`python -m ci.gitops_wait wait --kubeconfig PATH --output DIR`: wait until every Argo CD
Application is Synced and Healthy, wave after wave (ci.core.gitops_install decides).
`kubeconfig --from K3S_FILE --server URL --to PATH` waits for the file K3s writes, copies it
with the API address the runner reaches, and deletes the original (no credentials left in the
engine's shared volume). `preview --slug SLUG` waits until the preview's Applications (the
ApplicationSet's parent and its children) are Synced and Healthy; `preview-gone --slug SLUG`
until none of them and no namespace preview-SLUG is left; on expiry both write diagnostics.

Applications appear while it waits (the root app-of-apps creates the others), so it is done
only when every wave is ready and the set of Applications stayed the same for one more poll.
On a failed sync, a Degraded app or an expired wave deadline it writes diagnostics/ (the
Applications as Argo CD reports them, failure.txt) and exits 1. Exit 2 on usage errors.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ci.core import gitops_install

POLL_SECONDS = 5.0
PREVIEW_DIAGNOSTICS = "diagnostics-preview"
USAGE_ERROR = 2
FAILED = 1


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ci.gitops_wait", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    waiting = sub.add_parser("wait", help="until every Application is Synced and Healthy")
    waiting.add_argument("--kubeconfig", type=Path, required=True, help="cluster's kubeconfig")
    waiting.add_argument("--namespace", default="argocd", help="where the Applications live")
    waiting.add_argument("--output", type=Path, default=Path("cluster-output"), help="reports")
    for name, what in (
        ("preview", "until the preview's Applications are Synced and Healthy"),
        ("preview-gone", "until nothing of the preview is left"),
    ):
        one = sub.add_parser(name, help=what)
        one.add_argument("--kubeconfig", type=Path, required=True, help="cluster's kubeconfig")
        one.add_argument("--slug", required=True, help="the preview's slug (its file's name)")
        one.add_argument("--output", type=Path, default=Path("cluster-output"), help="reports")
    copy = sub.add_parser("kubeconfig", help="K3s's kubeconfig, copied for the runner")
    copy.add_argument("--from", dest="source", type=Path, required=True, help="K3s's file")
    copy.add_argument("--server", required=True, help="API URL the runner reaches")
    copy.add_argument("--to", dest="target", type=Path, required=True, help="the copy")
    copy.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for it")
    return p


def list_applications(kubeconfig: Path, namespace: str) -> list[dict[str, Any]]:
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    objects = client.CustomObjectsApi(api)
    found = objects.list_namespaced_custom_object(
        "argoproj.io", "v1alpha1", namespace, "applications", _request_timeout=30
    )
    items = found.get("items", []) if isinstance(found, dict) else []
    return [item for item in items if isinstance(item, dict)]


def list_preview_applications(kubeconfig: Path, slug: str) -> list[dict[str, Any]]:
    """The preview's Applications in every namespace (parent in argocd-previews, children in
    argocd), selected by its label."""
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    found = client.CustomObjectsApi(api).list_cluster_custom_object(
        "argoproj.io",
        "v1alpha1",
        "applications",
        label_selector=f"{gitops_install.PREVIEW_LABEL}={slug}",
        _request_timeout=30,
    )
    items = found.get("items", []) if isinstance(found, dict) else []
    return [item for item in items if isinstance(item, dict)]


def list_namespaces(kubeconfig: Path) -> list[str]:
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    found = client.CoreV1Api(api).list_namespace(_request_timeout=30)
    return [str(ns.metadata.name) for ns in found.items if ns.metadata is not None]


def first_unready(
    apps: list[dict[str, Any]], started: dict[int, float], now: float
) -> tuple[bool, str | None]:
    """(all ready, failure): judges the lowest wave that is not ready yet; a wave's clock
    starts when it is first waited on."""
    for wave in gitops_install.waves(apps):
        started.setdefault(wave.number, now)
        verdict = gitops_install.judge(wave, apps, now - started[wave.number])
        if not verdict.done:
            return False, verdict.failure
    return True, None


def write_diagnostics(
    output: Path, apps: list[dict[str, Any]], failure: str, name: str = "diagnostics"
) -> None:
    folder = output / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "failure.txt").write_text(f"{failure}\n")
    (folder / "applications.json").write_text(json.dumps(apps, indent=2, default=str))
    lines = [f"{gitops_install.status(a)}\n" for a in apps]
    (folder / "applications.txt").write_text("".join(lines))


def wait(kubeconfig: Path, namespace: str, output: Path) -> int:
    started: dict[int, float] = {}
    previous: set[str] | None = None
    output.mkdir(parents=True, exist_ok=True)
    while True:
        apps = list_applications(kubeconfig, namespace)
        ready, failure = first_unready(apps, started, time.monotonic())
        if failure is not None:
            write_diagnostics(output, apps, failure)
            print(f"ci.gitops_wait: {failure}", file=sys.stderr)
            return FAILED
        names = {str(a.get("metadata", {}).get("name")) for a in apps}
        if ready and apps and names == previous:
            print(f"ci.gitops_wait: {len(apps)} Applications Synced and Healthy", file=sys.stderr)
            return 0
        previous = names if ready else None
        time.sleep(POLL_SECONDS)


def wait_for_preview(kubeconfig: Path, slug: str, output: Path, gone: bool) -> int:
    """Polls until the preview is ready (or gone); on failure the Applications with Argo CD's
    conditions, and the preview namespace's events, pods and logs, under diagnostics-preview/."""
    started = time.monotonic()
    output.mkdir(parents=True, exist_ok=True)
    while True:
        apps = list_preview_applications(kubeconfig, slug)
        waited = time.monotonic() - started
        if gone:
            remains = gitops_install.preview_remains(apps, list_namespaces(kubeconfig), slug)
            verdict = gitops_install.judge_gone(remains, slug, waited)
        else:
            verdict = gitops_install.judge_preview(apps, slug, waited)
        if verdict.done:
            state = "gone" if gone else "Synced and Healthy"
            print(f"ci.gitops_wait: preview {slug} {state} after {waited:.0f} s", file=sys.stderr)
            return 0
        if verdict.failure is not None:
            write_diagnostics(output, apps, verdict.failure, PREVIEW_DIAGNOSTICS)
            preview_namespace_diagnostics(kubeconfig, slug, output)
            print(f"ci.gitops_wait: {verdict.failure}", file=sys.stderr)
            return FAILED
        time.sleep(POLL_SECONDS)


def preview_namespace_diagnostics(kubeconfig: Path, slug: str, output: Path) -> None:
    """Events, pod table and container logs of the preview's namespace (ci.cluster diagnose);
    what cannot be read is said, the Applications were written already."""
    from ci import cluster

    args = argparse.Namespace(
        kubeconfig=kubeconfig, namespace=f"preview-{slug}", output=output / PREVIEW_DIAGNOSTICS
    )
    try:
        cluster.diagnose(args)
    except Exception as exc:  # diagnostics must never hide the failure itself
        print(f"ci.gitops_wait: namespace diagnostics incomplete: {exc}", file=sys.stderr)


def copy_kubeconfig(source: Path, server: str, target: Path, timeout: float) -> int:
    from ci.cluster import WaitFailedError, wait_for_kubeconfig

    try:
        copied = wait_for_kubeconfig(source, server, timeout)
    except WaitFailedError as exc:
        print(f"ci.gitops_wait: {exc}", file=sys.stderr)
        return FAILED
    target.write_bytes(copied.read_bytes())
    target.chmod(0o600)
    source.unlink(missing_ok=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "kubeconfig":
        return copy_kubeconfig(args.source, args.server, args.target, args.timeout)
    if not args.kubeconfig.is_file():
        print(f"ci.gitops_wait: --kubeconfig: {args.kubeconfig} is not a file", file=sys.stderr)
        return USAGE_ERROR
    try:
        if args.command in ("preview", "preview-gone"):
            gone = args.command == "preview-gone"
            return wait_for_preview(args.kubeconfig, args.slug, args.output, gone)
        return wait(args.kubeconfig, args.namespace, args.output)
    except ValueError as exc:
        print(f"ci.gitops_wait: {exc}", file=sys.stderr)
        return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
