"""Decisions of the GitOps first install (`dagger call integration --gitops`): Argo CD pointed at
a git server inside the engine, and when its Applications count as Synced and Healthy.

Pure (no dagger, no cluster): the engine layer and `python -m ci.gitops_wait` call these with
the repository's files and the Application objects the API server returns.
"""

from __future__ import annotations

import enum
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

ARGOCD_DIR = "argocd"
SOURCE_FILE = f"{ARGOCD_DIR}/source.yaml"
WAVE_ANNOTATION = "argocd.argoproj.io/sync-wave"
# A wave gets a base deadline plus time per Application in it (images pulled, hooks run).
WAVE_BASE_SECONDS = 300.0
WAVE_PER_APP_SECONDS = 120.0
FAILED_PHASES = {"Failed", "Error"}


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


def runner_script(k3s_kubeconfig: str, server: str, base_url: str, output: str) -> str:
    """What the runner does against the fresh cluster, in order: its own kubeconfig, the real
    k3s/bootstrap.sh (Argo CD, NGINX Gateway Fabric, cert-manager, Sealed Secrets, the root
    app-of-apps), every Application Synced and Healthy, then tests/e2e through the gateway."""
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
    return "\n".join(lines) + "\n"
