"""Decisions of the GitOps first install (`dagger call integration --gitops`): Argo CD pointed at
a git server inside the engine, when its Applications count as Synced and Healthy, and the one
preview the run creates and deletes through `python -m ci.deliver preview|preview-destroy` (the
commands the `preview` and `preview-destroy` functions run), pushed to that git server.

Pure (no dagger, no cluster): the engine layer and `python -m ci.gitops_wait` call these with
the repository's files and the Application objects the API server returns.
"""

from __future__ import annotations

import enum
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from ci.core.versions import preview_slug

ARGOCD_DIR = "argocd"
SOURCE_FILE = f"{ARGOCD_DIR}/source.yaml"
WAVE_ANNOTATION = "argocd.argoproj.io/sync-wave"
# A wave gets a base deadline plus time per Application in it (images pulled, hooks run).
WAVE_BASE_SECONDS = 300.0
WAVE_PER_APP_SECONDS = 120.0
FAILED_PHASES = {"Failed", "Error"}
# The preview of `integration --gitops`: a branch name no person uses, a domain no DNS serves
# (the gateway routes by Host header), an hour's TTL in case the run dies before deleting it.
PREVIEW_BRANCH = "ci/gitops-integration"
PREVIEW_DOMAIN = "preview.ci.invalid"
PREVIEW_TTL_HOURS = 1.0
PREVIEW_LABEL = "chat-platform/preview"  # on the parent Application and on each child
PREVIEW_READY_SECONDS = 1200.0  # the ApplicationSet polls git, then one environment, wave by wave
PREVIEW_GONE_SECONDS = 600.0  # finalizers cascade: children, their resources, the namespace
PINNED_ENV = "staging"  # as `preview` does for every service the branch did not build


def source_url(files: Mapping[str, str]) -> str:
    """The repoURL argocd/source.yaml declares (every Application follows it)."""
    text = files.get(SOURCE_FILE)
    if text is None:
        raise ValueError(f"{SOURCE_FILE}: missing (where Argo CD reads this repository)")
    data = yaml.safe_load(text)
    url = data.get("repoURL") if isinstance(data, dict) else None
    if not isinstance(url, str) or not url:
        raise ValueError(f"{SOURCE_FILE}: field repoURL: expected a URL")
    return url


def retarget(files: Mapping[str, str], served_url: str) -> dict[str, str]:
    """The argocd/ files that name the repository's URL, rewritten to `served_url` (the git
    server inside the engine); only files that change are returned."""
    url = source_url(files)
    return {
        path: text.replace(url, served_url)
        for path, text in files.items()
        if path.startswith(f"{ARGOCD_DIR}/") and url in text
    }


GIT_PORT = 9418


def git_daemon_args(base_path: str, port: int = GIT_PORT) -> list[str]:
    """The engine's git server: every repository under `base_path`, anonymous, and taking
    pushes (receive-pack) for the run's preview file; reachable only inside the run."""
    return [
        "git",
        "daemon",
        "--reuseaddr",
        "--export-all",
        "--enable=receive-pack",
        f"--port={port}",
        f"--base-path={base_path}",
        base_path,
    ]


class State(enum.Enum):
    READY = "ready"  # Synced and Healthy
    PROGRESSING = "progressing"
    FAILED = "failed"  # the last sync operation failed: waiting longer changes nothing


@dataclass(frozen=True)
class AppStatus:
    name: str
    wave: int
    sync: str
    health: str
    state: State
    detail: str

    def __str__(self) -> str:
        text = f"Application/{self.name} (wave {self.wave}): {self.sync}/{self.health}"
        return f"{text}: {self.detail}" if self.detail else text


def _get(obj: Any, *keys: str) -> Any:
    for key in keys:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj


def wave_of(app: Mapping[str, Any]) -> int:
    raw = _get(app, "metadata", "annotations", WAVE_ANNOTATION)
    name = _get(app, "metadata", "name")
    try:
        return int(raw) if raw is not None else 0
    except ValueError as exc:
        raise ValueError(f"Application/{name}: {WAVE_ANNOTATION} {raw!r} is no integer") from exc


def status(app: Mapping[str, Any]) -> AppStatus:
    """An Application as Argo CD reports it: ready, still progressing, or failed."""
    name = str(_get(app, "metadata", "name"))
    sync = _get(app, "status", "sync", "status") or "Unknown"
    health = _get(app, "status", "health", "status") or "Unknown"
    phase = _get(app, "status", "operationState", "phase")
    conditions = _get(app, "status", "conditions") or []
    messages = [f"{c.get('type')}: {c.get('message')}" for c in conditions if isinstance(c, dict)]
    operation = _get(app, "status", "operationState", "message")
    if phase in FAILED_PHASES and operation:
        messages.append(f"sync {phase}: {operation}")
    if sync == "Synced" and health == "Healthy":
        state = State.READY
    elif phase in FAILED_PHASES or health == "Degraded":
        state = State.FAILED
    else:
        state = State.PROGRESSING
    return AppStatus(name, wave_of(app), sync, health, state, "; ".join(messages))


@dataclass(frozen=True)
class Wave:
    number: int
    apps: tuple[str, ...]
    deadline_seconds: float


def waves(apps: Iterable[Mapping[str, Any]]) -> list[Wave]:
    """The Applications grouped by sync wave, lowest first, each with its deadline."""
    grouped: dict[int, list[str]] = {}
    for app in apps:
        grouped.setdefault(wave_of(app), []).append(str(_get(app, "metadata", "name")))
    return [
        Wave(n, tuple(sorted(names)), WAVE_BASE_SECONDS + WAVE_PER_APP_SECONDS * len(names))
        for n, names in sorted(grouped.items())
    ]


@dataclass(frozen=True)
class Verdict:
    done: bool
    failure: str | None  # set when waiting longer cannot help (failed, or deadline expired)


def judge(wave: Wave, apps: Iterable[Mapping[str, Any]], waited_seconds: float) -> Verdict:
    """Whether every Application of `wave` is Synced and Healthy, still worth waiting for, or
    failed (a failed sync, a Degraded app, or the wave's deadline expired: named, with Argo
    CD's conditions)."""
    found = {s.name: s for s in map(status, apps) if s.name in wave.apps}
    missing = sorted(set(wave.apps) - set(found))
    failed = [s for s in found.values() if s.state is State.FAILED]
    pending = [s for s in found.values() if s.state is not State.READY]
    if failed:
        return Verdict(False, "\n".join(map(str, failed)))
    if not pending and not missing:
        return Verdict(True, None)
    if waited_seconds < wave.deadline_seconds:
        return Verdict(False, None)
    lines = [f"deadline of wave {wave.number} ({wave.deadline_seconds:.0f} s) expired:"]
    lines += [f"  {s}" for s in pending] + [f"  Application/{m}: gone" for m in missing]
    return Verdict(False, "\n".join(lines))


@dataclass(frozen=True)
class PreviewRun:
    """The preview a GitOps run creates and deletes: staging's pinned images (what `preview`
    passes for services a branch did not build), the charts at the served branch."""

    served_url: str
    revision: str  # the branch the git server serves: Argo CD reads the charts there
    images: tuple[str, ...]  # `<service>=<tag>@sha256:<digest>`, as `preview` passes them

    @property
    def slug(self) -> str:
        return preview_slug(PREVIEW_BRANCH)

    @property
    def namespace(self) -> str:
        return f"preview-{self.slug}"

    def git_args(self) -> list[str]:
        return ["--clone", self.served_url, "--branch", self.revision]

    def create_args(self) -> list[str]:
        """`python -m ci.deliver` arguments. --no-verify: the digests are staging's pins,
        checked against the registry when they were bumped, and pulled by this very cluster."""
        args = ["preview", *self.git_args(), "--preview-branch", PREVIEW_BRANCH]
        args += ["--domain", PREVIEW_DOMAIN, "--ttl-hours", str(PREVIEW_TTL_HOURS)]
        args += ["--revision", self.revision, "--no-verify"]
        return args + [part for image in self.images for part in ("--image", image)]

    def destroy_args(self) -> list[str]:
        return ["preview-destroy", *self.git_args(), "--preview-branch", PREVIEW_BRANCH]


def pinned_images(pins: Mapping[str, str | None]) -> tuple[str, ...]:
    """`<service>=<tag>@<digest>` for every service with a pinned digest, by name."""
    return tuple(f"{name}={ref}" for name, ref in sorted(pins.items()) if ref)


def no_pins_reason(pins: Mapping[str, str | None]) -> str:
    files = ", ".join(f"charts/{name}/values-{PINNED_ENV}.yaml" for name in sorted(pins))
    return (
        f"preview: no image digest pinned in {files or f'any values-{PINNED_ENV}.yaml'}; "
        f"a preview runs pinned images only (`dagger call deploy --env {PINNED_ENV}` pins them)"
    )


def _label(obj: Mapping[str, Any], key: str) -> Any:
    return _get(obj, "metadata", "labels", key)


def preview_apps(apps: Iterable[Mapping[str, Any]], slug: str) -> list[Mapping[str, Any]]:
    """The preview's parent Application and its children (both carry the preview label)."""
    return [a for a in apps if _label(a, PREVIEW_LABEL) == slug]


def judge_preview(apps: Iterable[Mapping[str, Any]], slug: str, waited_seconds: float) -> Verdict:
    """Done when the parent `preview-<slug>` and at least one child exist and every one of
    them is Synced and Healthy; failed at once on a failed sync or a Degraded app, or when
    the deadline expired (each pending Application named with Argo CD's conditions)."""
    found = [status(a) for a in preview_apps(apps, slug)]
    parent = f"preview-{slug}"
    failed = [s for s in found if s.state is State.FAILED]
    if failed:
        return Verdict(False, "\n".join(map(str, failed)))
    children = [s for s in found if s.name != parent]
    complete = any(s.name == parent for s in found) and bool(children)
    if complete and all(s.state is State.READY for s in found):
        return Verdict(True, None)
    if waited_seconds < PREVIEW_READY_SECONDS:
        return Verdict(False, None)
    lines = [f"preview {slug}: not Synced and Healthy within {PREVIEW_READY_SECONDS:.0f} s:"]
    lines += [f"  {s}" for s in found if s.state is not State.READY]
    if not any(s.name == parent for s in found):
        lines.append(f"  Application/{parent}: never appeared (previews ApplicationSet)")
    if not children:
        lines.append(f"  no child Application of {parent} appeared")
    return Verdict(False, "\n".join(lines))


def preview_remains(
    apps: Iterable[Mapping[str, Any]], namespaces: Iterable[str], slug: str
) -> list[str]:
    """What of the preview still exists: its Applications (parent and children, deleted by
    the ApplicationSet and the finalizers' cascade) and its namespace."""
    left = [f"Application/{_get(a, 'metadata', 'name')}" for a in preview_apps(apps, slug)]
    namespace = f"preview-{slug}"
    return sorted(left) + ([f"Namespace/{namespace}"] if namespace in namespaces else [])


def judge_gone(remains: Sequence[str], slug: str, waited_seconds: float) -> Verdict:
    """Gone when nothing of the preview remains; failed, naming what is left, at the deadline."""
    if not remains:
        return Verdict(True, None)
    if waited_seconds < PREVIEW_GONE_SECONDS:
        return Verdict(False, None)
    left = ", ".join(remains)
    return Verdict(
        False,
        f"preview {slug}: still there {PREVIEW_GONE_SECONDS:.0f} s after its file went: {left}",
    )


def preview_lines(preview: PreviewRun, kubeconfig: str, output: str) -> list[str]:
    """Create the preview, wait for it, delete it, wait until it is gone: the same commands
    as the `preview` and `preview-destroy` functions, against the served repository."""
    q = shlex.quote
    if not preview.images:
        return [f"echo {q(no_pins_reason({}))} >&2", "exit 1"]
    wait = f"python -m ci.gitops_wait %s --kubeconfig {kubeconfig} --slug {preview.slug}"
    wait += f" --output {q(output)}"
    return [
        "python -m ci.deliver " + " ".join(map(q, preview.create_args())),
        wait % "preview",
        "python -m ci.deliver " + " ".join(map(q, preview.destroy_args())),
        wait % "preview-gone",
    ]


def runner_script(
    k3s_kubeconfig: str,
    server: str,
    base_url: str,
    output: str,
    preview: PreviewRun | None = None,
) -> str:
    """What the runner does against the fresh cluster, in order: its own kubeconfig, the real
    k3s/bootstrap.sh (Argo CD, NGINX Gateway Fabric, cert-manager, Sealed Secrets, the root
    app-of-apps), every Application Synced and Healthy, tests/e2e through the gateway, then
    one preview created and deleted (when `preview` is given)."""
    kubeconfig = "/tmp/kubeconfig"  # noqa: S108 - inside the runner container only
    q = shlex.quote
    lines = [
        "set -eu",
        f"python -m ci.gitops_wait kubeconfig --from {q(k3s_kubeconfig)} --server {q(server)} "
        f"--to {kubeconfig}",
        f"export KUBECONFIG={kubeconfig}",
        "bash k3s/bootstrap.sh",
        f"python -m ci.gitops_wait wait --kubeconfig {kubeconfig} --output {q(output)}",
        f"python -m ci.cluster e2e --kubeconfig {kubeconfig} --repo . "
        f"--base-url {q(base_url)} --output {q(output)}",
    ]
    if preview is not None:
        lines += preview_lines(preview, kubeconfig, output)
    return "\n".join(lines) + "\n"
