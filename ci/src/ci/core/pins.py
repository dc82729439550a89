"""The revision an environment reads its charts at (argocd/environments/values-<env>.yaml).

Staging follows `main`; production pins a commit. Promotion moves that pin: after the digests
are committed, `pin_revision` commits `revision: <that commit>`, so production gets the charts and
values exactly as staging ran them. The pin commit carries `Deploy-Environment`, so a rollback of
the environment reverts it together with the digests.

A pinned environment's parent Application (argocd/apps/<env>.yaml) reads the environment chart at
the pin too (targetRevision, plus a `revision` parameter overriding the older pin that
values-<env>.yaml names at that commit): the same commit moves all three, so they never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ruamel.yaml.comments import CommentedMap
from yaml import safe_load

from ci.core.gitops import (
    ENV_TRAILER,
    SKIP_CI_MARKER,
    SOURCE_SHA,
    PushPolicy,
    check_label,
    transact,
)
from ci.core.gitrepo import Git
from ci.core.yamlfile import YamlFileError, atomic_write, dump, load

ENVIRONMENT_CHART = "argocd/environments"
PARENTS = "argocd/apps"
# What a pinned environment's Applications read at the pinned revision.
CHARTS = "charts"
COMMIT = SOURCE_SHA
PIN_TRAILER = "Pinned-Revision"


@dataclass(frozen=True)
class PinResult:
    commit: str | None  # None: already pinned there, or the environment follows a branch
    old: str | None = None
    new: str | None = None


def pin_path(root: Path, env: str) -> Path:
    return root / ENVIRONMENT_CHART / f"values-{check_label('environment', env)}.yaml"


def _values(path: Path) -> CommentedMap:
    data = load(path)
    if not isinstance(data, CommentedMap) or not isinstance(data.get("revision"), str):
        raise YamlFileError(f"{path}: field 'revision' must be a string")
    return data


def parent_path(root: Path, env: str) -> Path:
    return root / PARENTS / f"{check_label('environment', env)}.yaml"


def parent_revisions(root: Path, env: str) -> tuple[str, str | None] | None:
    """(targetRevision, `revision` parameter) of `env`'s parent; None without a parent file."""
    path = parent_path(root, env)
    if not path.is_file():
        return None
    source = _parent_source(path, load(path))
    parameters = source.get("helm", {}).get("parameters", [])
    value = next((p.get("value") for p in parameters if p.get("name") == "revision"), None)
    return str(source.get("targetRevision")), None if value is None else str(value)


def _parent_source(path: Path, data: object) -> CommentedMap:
    source = data.get("spec", {}).get("source") if isinstance(data, CommentedMap) else None
    if not isinstance(source, CommentedMap):
        raise YamlFileError(f"{path}: field 'spec.source' must be a mapping")
    return source


def _pin_parent(path: Path, revision: str) -> None:
    """Point the parent at `revision`: targetRevision and the `revision` Helm parameter."""
    data = load(path)
    source = _parent_source(path, data)
    source["targetRevision"] = revision
    helm = source.setdefault("helm", CommentedMap())
    parameters = helm.setdefault("parameters", [])
    for parameter in parameters:
        if parameter.get("name") == "revision":
            parameter["value"] = revision
            break
    else:
        parameters.append(CommentedMap(name="revision", value=revision))
    atomic_write(path, dump(data))


def pinned_revision(root: Path, env: str) -> str | None:
    """The commit `env` reads its charts at; None when it follows a branch or has no file."""
    path = pin_path(root, env)
    if not path.is_file():
        return None
    revision = str(_values(path)["revision"])
    return revision if COMMIT.fullmatch(revision) else None


def _same_at(git: Git, env: str, old: str, new: str) -> bool:
    """Whether `env` reads the same at both commits: charts/, the environment chart, and its
    values file apart from the pin itself (every pin commit changes that)."""
    values = pin_path(Path(), env).as_posix()
    if not git.succeeds(
        "diff", "--quiet", old, new, "--", CHARTS, ENVIRONMENT_CHART, f":!{values}"
    ):
        return False
    return _without_pin(git, old, values) == _without_pin(git, new, values)


def _without_pin(git: Git, commit: str, values: str) -> object:
    data = safe_load(git.run("show", f"{commit}:{values}", check=False))
    return {k: v for k, v in data.items() if k != "revision"} if isinstance(data, dict) else data


def pin_message(env: str, old: str, new: str) -> str:
    return (
        f"pin({env}): charts at {new[:12]} {SKIP_CI_MARKER}\n\n"
        f"{env} reads charts and values at {new} (was {old}).\n\n"
        f"{ENV_TRAILER}: {env}\n{PIN_TRAILER}: {new}\n"
    )


def pin_revision(git: Git, env: str, revision: str, policy: PushPolicy | None = None) -> PinResult:
    """Point `env` at `revision` (a full commit sha in the branch): one commit, pushed.

    Nothing happens for an environment that follows a branch (staging), or when `charts/` (all
    that its Applications read at the revision) is the same at `revision` as at the current pin.
    """
    if not COMMIT.fullmatch(revision):
        raise ValueError(f"pin: {revision!r} is not a full commit sha")
    found: dict[str, str] = {}

    def edit(_tip: str) -> tuple[list[Path], str] | None:
        path = pin_path(git.workdir, env)
        old = pinned_revision(git.workdir, env)
        if old is None or old == revision:
            return None
        if not git.succeeds("merge-base", "--is-ancestor", revision, "HEAD"):
            raise ValueError(f"pin: {revision} is not in the branch's history")
        if _same_at(git, env, old, revision):
            return None  # nothing production reads would change
        data = _values(path)
        data["revision"] = revision
        atomic_write(path, dump(data))
        changed = [path]
        parent = parent_path(git.workdir, env)
        if parent.is_file():
            _pin_parent(parent, revision)
            changed.append(parent)
        found.update(old=old)
        return changed, pin_message(env, old, revision)

    commit, _ = transact(git, policy or PushPolicy(), edit)
    if commit is None:
        return PinResult(commit=None)
    return PinResult(commit=commit, old=found["old"], new=revision)
