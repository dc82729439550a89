"""GitOps write-back: image bumps, promotion and rollback as commits on the deployment branch.

Everything here drives real git through `gitrepo.Git`. One bump is one commit; it is pushed with
fetch + rebase + retry (bounded) when another writer got there first, and on a real conflict the
clone is put back exactly where it started and a `ConflictError` names the files.

A bump commit never starts a pipeline run by itself, three ways (any one suffices):
1. its subject carries `[skip ci]`, which GitHub Actions honours for push and pull_request events;
2. the main workflow ignores pushes that only touch `charts/*/values-*.yaml` and
   `argocd/previews/**` (`paths-ignore`), the only files these commits change;
3. pushes made with the workflow's own GITHUB_TOKEN do not trigger workflows at all.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ci.core.gitrepo import Git, GitError
from ci.core.yamlfile import (
    YamlFileError,
    atomic_write,
    dump,
    loads,
    parse,
    read_data,
    read_text,
    splice_scalars,
)

SKIP_CI_MARKER = "[skip ci]"
ENV_TRAILER = "Deploy-Environment"
SOURCE_TRAILER = "Source"
REVERTS_TRAILER = "Reverts"
PROMOTED_FROM_TRAILER = "Promoted-From"
# One per promoted service, `<service>=<sha>`: the source of the build that was copied.
PROMOTED_SOURCE_TRAILER = "Promoted-Source"
RECENT_PINS = 64  # commits of a values file read first when looking for its pinned source
SOURCE_SHA = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
# Reasons git prints for a push that lost a race and can be retried after a rebase.
# "atomic transaction failed" is the remote losing a ref-lock race to a concurrent push.
RETRYABLE_PUSH = (
    "fetch first",
    "non-fast-forward",
    "cannot lock ref",
    "failed to update ref",
    "incorrect old value",
    "stale info",
    "atomic transaction failed",
    # Transient faults of the remote (a read-only or full object store, a dropped connection):
    # the same push succeeds once the remote heals, so they are retried with backoff too.
    "unpacker error",
    "remote end hung up",
    "rpc failed",
    "early eof",
)
# A tag that already exists will exist on every retry too.
FATAL_PUSH = ("already exists",)


class GitOpsError(RuntimeError):
    """A delivery operation could not be completed; nothing was left half-done."""


class ConflictError(GitOpsError):
    """Our change and a concurrent change edit the same lines; needs a human."""


class UnknownSourceError(ValueError):
    """The source commit of a bump is not in the repository, so it cannot be ordered."""


class PushRejectedError(GitOpsError):
    """The remote kept rejecting the push after every allowed retry."""

    @classmethod
    def after(cls, policy: PushPolicy) -> PushRejectedError:
        return cls(
            f"push to {policy.remote}/{policy.branch} still rejected after "
            f"{policy.max_attempts} attempts"
        )


@dataclass(frozen=True)
class ImageRef:
    """A readable tag plus the immutable digest it resolved to when it was pushed."""

    tag: str
    digest: str

    def __post_init__(self) -> None:
        if not TAG.fullmatch(self.tag):
            raise ValueError(f"image tag {self.tag!r} is not a valid OCI tag")
        if not DIGEST.fullmatch(self.digest):
            raise ValueError(f"image digest {self.digest!r} is not sha256:<64 hex>")

    @classmethod
    def parse(cls, text: str) -> ImageRef:
        """`<tag>@sha256:<hex>` as printed by publish (a repository prefix is ignored)."""
        ref, sep, digest = text.partition("@")
        if not sep:
            raise ValueError(f"image {text!r}: expected <tag>@sha256:<digest>")
        tag = ref.rsplit(":", 1)[-1] if ":" in ref.rsplit("/", 1)[-1] else ref
        return cls(tag=tag, digest=digest)

    def short(self) -> str:
        return f"{self.tag}@{self.digest[:19]}"


@dataclass(frozen=True)
class ImageChange:
    service: str
    env: str
    old: ImageRef | None
    new: ImageRef

    def line(self, verb: str = "deploy") -> str:
        old = self.old.short() if self.old else "none"
        return f"{verb}({self.env}): {self.service} {old} -> {self.new.short()}"


@dataclass(frozen=True)
class PushPolicy:
    """Where to push and how hard to try when another writer pushed first.

    Each lost race means another writer landed, so retrying makes progress: 100 attempts. The
    backoff doubles from 0.05 s up to 8 s so that a crowd of writers spreads out instead of
    spending the machine on attempts that lose (with a 1 s cap, 100 writers thrashed).
    """

    remote: str = "origin"
    branch: str = "main"
    max_attempts: int = 100
    backoff_seconds: float = 0.05
    max_backoff_seconds: float = 8.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)

    def delay(self, attempt: int) -> float:
        # Exponential backoff with full jitter so concurrent writers spread out.
        cap = min(self.max_backoff_seconds, self.backoff_seconds * 2**attempt)
        return random.uniform(0, cap)  # noqa: S311 - jitter, not cryptography


@dataclass(frozen=True)
class CommitResult:
    commit: str | None
    changes: tuple[ImageChange, ...] = ()
    attempts: int = 0
    # Services not pinned because the environment already runs a newer build of them.
    stale: tuple[str, ...] = ()


def check_source(value: str) -> str:
    """A full commit sha (SHA-1 or SHA-256 repositories): what a pin records as its Source."""
    if not SOURCE_SHA.fullmatch(value):
        raise ValueError(f"source {value!r} is not a full commit sha (40 or 64 hex digits)")
    return value


def check_label(kind: str, value: str) -> str:
    if not DNS_LABEL.fullmatch(value):
        raise ValueError(f"{kind} {value!r} is not a DNS-1123 label")
    return value


def values_path(root: Path, service: str, env: str) -> Path:
    """The machine-edited values file of one service in one environment."""
    check_label("service", service)
    check_label("environment", env)
    return root / "charts" / service / f"values-{env}.yaml"


def _image_map(path: Path, data: object) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise YamlFileError(f"{path}: expected a mapping at the top level")
    image = data.get("image")
    if not isinstance(image, dict):
        raise YamlFileError(f"{path}: field 'image' must be a mapping with tag and digest")
    return image


def _pinned(path: Path, image: Mapping[str, Any]) -> ImageRef | None:
    tag, digest = image.get("tag"), image.get("digest")
    if not tag or not digest:
        return None
    try:
        return ImageRef(tag=str(tag), digest=str(digest))
    except ValueError as exc:
        raise YamlFileError(f"{path}: field 'image': {exc}") from exc


def read_image(path: Path) -> ImageRef | None:
    """The image a values file pins, or None when it pins none yet (empty tag or digest)."""
    return _pinned(path, _image_map(path, read_data(path)))


def pinned_image(path: Path, text: str | None) -> ImageRef | None:
    """`read_image` of `text`, the content of `path` (None: no such file, no image)."""
    return None if text is None else _pinned(path, _image_map(path, parse(path, text)))


def set_image(path: Path, service: str, env: str, ref: ImageRef) -> ImageChange | None:
    """Edit exactly image.tag and image.digest; None (file untouched) when already equal."""
    edit = image_edit(path, read_text(path), ref)
    if edit is None:
        return None
    text, old = edit
    atomic_write(path, text)
    return ImageChange(service=service, env=env, old=old, new=ref)


def image_edit(path: Path, text: str, ref: ImageRef) -> tuple[str, ImageRef | None] | None:
    """(`text` of values file `path` pinning `ref`, the image it pinned), None when equal.

    The two scalars are replaced in place (every other byte kept); only when that cannot be
    done (a key is missing) does ruamel.yaml's round trip add them.
    """
    old = _pinned(path, _image_map(path, parse(path, text)))
    if old == ref:
        return None
    values = {"tag": ref.tag, "digest": ref.digest}
    edited = splice_scalars(path, text, ["image"], values)
    return (edited if edited is not None else _round_trip_edit(path, text, values)), old


def _round_trip_edit(path: Path, text: str, values: Mapping[str, str]) -> str:
    """Set `values` under `image` with ruamel.yaml, keeping each scalar's quoting style."""
    from ruamel.yaml.scalarstring import ScalarString

    data = loads(path, text)
    image = _image_map(path, data)
    for key, value in values.items():
        old = image.get(key)
        image[key] = type(old)(value) if isinstance(old, ScalarString) else value
    return dump(data)


# --- git transaction ------------------------------------------------------------------------


def sync_branch(git: Git, policy: PushPolicy, *, fetched: bool = False) -> str:
    """Bring the clone's branch up to the remote's tip (fetched first unless `fetched`);
    refuse a dirty or diverged clone."""
    operation = git.in_progress_operation()
    if operation:
        raise GitOpsError(f"{git.workdir}: a {operation} is in progress; finish or abort it first")
    if not git.is_clean():
        raise GitOpsError(f"{git.workdir}: the work tree has uncommitted changes")
    if not fetched:
        git.run("fetch", "--quiet", policy.remote, policy.branch)
    remote_ref = f"{policy.remote}/{policy.branch}"
    if git.current_branch() != policy.branch:
        if git.succeeds("rev-parse", "--verify", "--quiet", f"refs/heads/{policy.branch}"):
            git.run("checkout", "--quiet", policy.branch)
        else:
            git.run("checkout", "--quiet", "-b", policy.branch, remote_ref)
    head, tip = git.run("rev-parse", "HEAD", remote_ref).split()
    if head == tip:  # a fresh clone, the usual case: nothing to merge
        return head
    try:
        git.run("merge", "--ff-only", "--quiet", remote_ref)
    except GitError as exc:
        raise GitOpsError(
            f"{git.workdir}: local {policy.branch} has diverged from {remote_ref}"
        ) from exc
    return git.head()


def restore(git: Git, start: str) -> None:
    """Put the clone back to `start`: no operation in progress, no stray edits, no new commits."""
    for operation in ("rebase", "revert", "cherry-pick", "merge"):
        if git.in_progress_operation() == operation:
            git.run("-c", "core.hooksPath=/dev/null", operation, "--abort", check=False)
    git.run("reset", "--quiet", "--hard", start)


def _rejection(output: str) -> tuple[bool, str]:
    """(retryable, reason) from `git push --porcelain` output of a failed push."""
    rejected = [line for line in output.splitlines() if line.startswith("!")]
    reason = "; ".join(rejected) or output.strip()
    lowered = reason.lower()
    if any(word in lowered for word in FATAL_PUSH):
        return False, reason
    return any(word in lowered for word in RETRYABLE_PUSH), reason


def push_may_succeed_later(exc: GitError) -> bool:
    """A failed push (raised by Git.run) that a retry may get through: a lost race or a
    transient fault of the remote, not a refusal."""
    return _rejection(exc.stdout + "\n" + exc.stderr)[0]


def _conflicting_files(git: Git) -> list[str]:
    return git.run("diff", "--name-only", "--diff-filter=U").splitlines()


def _push(git: Git, policy: PushPolicy, refs: Sequence[str]) -> str | None:
    """Push HEAD (and `refs`) atomically; None on success, else why a retry may succeed.

    Raises GitOpsError when retrying cannot help (a hook refused it, a tag exists).
    """
    return push_atomic(git, policy, [f"HEAD:refs/heads/{policy.branch}", *refs])


def push_atomic(git: Git, policy: PushPolicy, arguments: Sequence[str]) -> str | None:
    """`git push --atomic` of `arguments` (refspecs, leases); None on success, else the reason
    a retry may succeed. GitOpsError when retrying cannot help."""
    try:
        git.run("push", "--porcelain", "--atomic", policy.remote, *arguments)
    except GitError as exc:
        retryable, reason = _rejection(exc.stdout + "\n" + exc.stderr)
        if not retryable:
            raise GitOpsError(f"push to {policy.remote}/{policy.branch} refused: {reason}") from exc
        return reason
    return None


def _refresh(git: Git, policy: PushPolicy) -> str:
    """Drop our unpushed attempt and stand on the remote's new tip."""
    git.run("fetch", "--quiet", policy.remote, policy.branch)
    git.run("reset", "--quiet", "--hard", f"{policy.remote}/{policy.branch}")
    return git.head()


def redo_until_pushed(
    git: Git,
    policy: PushPolicy,
    make_commits: Callable[[str], str | None],
    extra_refs: Callable[[str], Sequence[str]] | None = None,
) -> tuple[str | None, int]:
    """Sync, `make_commits(tip)`, push; when another writer pushed first, redo on the new tip.

    The change is made again from the fresh files, not rebased as a text patch: a bump sets
    values, so two bumps of the same keys never "conflict". `make_commits` returns the new head,
    or None when there is nothing to do. `extra_refs(head)` (re)creates refs that must point at
    the final commit (release tags) and returns their refspecs; they are pushed atomically with
    the branch. Any failure puts the clone back at the first synced tip. Returns (head or None,
    attempts).
    """
    start = sync_branch(git, policy)
    tip = start
    try:
        for attempt in range(1, policy.max_attempts + 1):
            head = make_commits(tip)
            if head is None:
                restore(git, tip)
                return None, attempt
            if _push(git, policy, list(extra_refs(head)) if extra_refs else []) is None:
                return head, attempt
            if attempt < policy.max_attempts:
                policy.sleep(policy.delay(attempt))
                tip = _refresh(git, policy)
    except BaseException:
        restore(git, start)
        raise
    restore(git, start)
    raise PushRejectedError.after(policy)


def commit_paths(git: Git, paths: Iterable[Path], message: str) -> str | None:
    """Stage exactly `paths` (additions, edits, deletions) and commit; None when nothing changed."""
    relative = [str(p.relative_to(git.workdir)) if p.is_absolute() else str(p) for p in paths]
    if not relative:
        return None
    git.run("add", "--all", "--", *relative)
    try:
        git.run("commit", "--quiet", "--no-verify", "-F", "-", stdin=message)
    except GitError as exc:
        if "nothing to commit" in exc.stdout or "nothing added to commit" in exc.stdout:
            return None
        raise
    return git.head()


def transact(
    git: Git,
    policy: PushPolicy,
    edit: Callable[[str], tuple[list[Path], str] | None],
    extra_refs: Callable[[str], Sequence[str]] | None = None,
) -> tuple[str | None, int]:
    """Run `edit(tip)` -> (paths, message) on the remote's tip, commit, push; redo on a lost race.

    `edit` is called again from scratch after every lost race, so it must read what it edits.
    """

    def make_commit(tip: str) -> str | None:
        outcome = edit(tip)
        return None if outcome is None else commit_paths(git, *outcome)

    return redo_until_pushed(git, policy, make_commit, extra_refs)


# --- bump, promote, rollback ----------------------------------------------------------------


def bump_message(
    env: str,
    changes: Sequence[ImageChange],
    source_sha: str,
    *,
    verb: str = "deploy",
    extra_trailers: Sequence[tuple[str, str]] = (),
) -> str:
    services = ", ".join(change.service for change in changes)
    lines = [f"{verb}({env}): {services} {SKIP_CI_MARKER}", ""]
    lines += [change.line() for change in changes]
    trailers = [(SOURCE_TRAILER, source_sha), (ENV_TRAILER, env), *extra_trailers]
    lines += ["", *(f"{key}: {value}" for key, value in trailers)]
    return "\n".join(lines) + "\n"


def _trailer_format(*keys: str) -> str:
    fields = (f"%(trailers:key={key},valueonly,separator=%x2C)" for key in keys)
    return "%H%x1f" + "%x1f".join(fields) + "%x1e"


def pinned_source(git: Git, service: str, env: str) -> str | None:
    """The Source of the build `env` runs for `service`, from the history of its values file.

    The newest pin that no rollback undid decides: a bump's `Source`, a promotion's
    `Promoted-Source` for that service. Commits without those trailers (hand edits of other
    values) are passed over; None when no pin is known. The recent history almost always
    decides, so the whole history is read only when it does not.
    """
    path = values_path(Path("."), service, env).as_posix()
    keys = (SOURCE_TRAILER, REVERTS_TRAILER, PROMOTED_FROM_TRAILER, PROMOTED_SOURCE_TRAILER)
    fmt = f"--format={_trailer_format(*keys)}"
    recent = git.run("log", f"--max-count={RECENT_PINS}", fmt, "HEAD", "--", path)
    records = [r.strip("\n") for r in recent.split("\x1e") if r.strip()]
    decided, source = _decide(records, service)
    if decided or len(records) < RECENT_PINS:
        return source
    everything = git.run("log", fmt, "HEAD", "--", path)
    return _decide([r.strip("\n") for r in everything.split("\x1e") if r.strip()], service)[1]


def pinned_sources(
    git: Git, revision: str, env: str, services: Iterable[str]
) -> dict[str, str | None]:
    """`pinned_source` of each service at `revision`, from one walk of their files' history."""
    paths = {values_path(Path("."), s, env).as_posix(): s for s in services}
    records: dict[str, list[str]] = {s: [] for s in paths.values()}
    keys = (SOURCE_TRAILER, REVERTS_TRAILER, PROMOTED_FROM_TRAILER, PROMOTED_SOURCE_TRAILER)
    out = git.run(
        "log", f"--format=%x1d{_trailer_format(*keys)}", "--name-only", revision, "--", *paths
    )
    for entry in out.split("\x1d")[1:]:
        record, _, names = entry.partition("\x1e")
        for name in names.split("\n"):
            if name in paths:
                records[paths[name]].append(record.strip("\n"))
    return {service: _decide(found, service)[1] for service, found in records.items()}


def _decide(records: Sequence[str], service: str) -> tuple[bool, str | None]:
    """(decided, source) from `log` records of one values file, newest first."""
    undone: set[str] = set()
    for record in records:
        sha, source, reverts, promoted_from, promoted = record.split("\x1f")
        if sha in undone:
            continue
        if reverts:
            undone.update(value.strip() for value in reverts.split(","))
        elif promoted_from:
            pairs = (item.strip().partition("=") for item in promoted.split(","))
            return True, {name: sha_ for name, _, sha_ in pairs}.get(service) or None
        elif source:
            return True, source.split(",")[0].strip()
    return False, None


def is_stale(git: Git, source_sha: str, pinned: str | None) -> bool:
    """True when `source_sha` is an older build than `pinned` (a proper ancestor of it)."""
    if pinned is None or pinned == source_sha:
        return False
    return git.succeeds("merge-base", "--is-ancestor", source_sha, pinned)


def require_commit(git: Git, source_sha: str) -> None:
    """Refuse a source the repository does not know: ordering needs its ancestry."""
    if not git.succeeds("cat-file", "-e", f"{source_sha}^{{commit}}"):
        raise UnknownSourceError(f"no such commit in {git.workdir} (after fetching the branch)")


def apply_images(
    git: Git,
    env: str,
    images: Mapping[str, ImageRef],
    source_sha: str,
    refuse_stale: bool = True,
) -> tuple[list[ImageChange], list[str]]:
    """Pin `images` in the work tree's values-<env>.yaml files (no commit), decided on HEAD:
    (the changes made, the services left alone because `env` already runs a newer build)."""
    changes: list[ImageChange] = []
    stale: list[str] = []
    for service, ref in sorted(images.items()):
        if refuse_stale and is_stale(git, source_sha, pinned_source(git, service, env)):
            stale.append(service)
            continue
        change = set_image(values_path(git.workdir, service, env), service, env, ref)
        if change:
            changes.append(change)
    return changes, stale


def bump(
    git: Git,
    env: str,
    images: Mapping[str, ImageRef],
    source_sha: str,
    policy: PushPolicy | None = None,
    *,
    verb: str = "deploy",
    extra_trailers: Sequence[tuple[str, str]] = (),
    refuse_stale: bool = True,
) -> CommitResult:
    """Pin `images` (service -> tag+digest) in values-<env>.yaml: one commit, pushed; idempotent.

    With `refuse_stale`, a service whose pinned source is newer than `source_sha` (`source_sha`
    is its ancestor) is left alone and reported in `stale`: an out-of-order pipeline never
    rolls an environment back. After a lost push race everything is decided again on the new tip.
    """
    policy = policy or PushPolicy()
    check_label("environment", env)
    check_source(source_sha)
    if not images:
        raise ValueError("bump: no images given")
    changes: list[ImageChange] = []
    stale: list[str] = []
    known: list[str] = []  # the source, once found: commits never leave a repository

    def edit(_tip: str) -> tuple[list[Path], str] | None:
        if not known:
            require_commit(git, source_sha)
            known.append(source_sha)
        changes[:], stale[:] = apply_images(git, env, images, source_sha, refuse_stale)
        if not changes:
            return None
        message = bump_message(env, changes, source_sha, verb=verb, extra_trailers=extra_trailers)
        return [values_path(git.workdir, c.service, env) for c in changes], message

    commit, attempts = transact(git, policy, edit)
    return CommitResult(
        commit=commit,
        changes=tuple(changes) if commit else (),
        attempts=attempts,
        stale=tuple(stale),
    )


def environment_services(root: Path, env: str) -> list[str]:
    """Services (folders with a service.yaml) whose chart has a values file for `env`.

    Platform charts (postgres, redis, ...) have values files too but no image to promote.
    """
    check_label("environment", env)
    charts = (p.parent.name for p in (root / "charts").glob(f"*/values-{env}.yaml"))
    return sorted(name for name in charts if (root / "services" / name / "service.yaml").is_file())


def known_environments(root: Path) -> list[str]:
    """Environments some service has a values file for (`charts/<service>/values-<env>.yaml`)."""
    envs = {
        path.stem.removeprefix("values-")
        for path in (root / "charts").glob("*/values-*.yaml")
        if (root / "services" / path.parent.name / "service.yaml").is_file()
    }
    return sorted(env for env in envs if DNS_LABEL.fullmatch(env))


def check_environment(root: Path, env: str) -> str:
    """`env` if some service is deployed to it; ValueError naming the known ones otherwise."""
    check_label("environment", env)
    known = known_environments(root)
    if env not in known:
        raise ValueError(f"unknown environment {env!r} (known: {', '.join(known) or 'none'})")
    return env


def promote(
    git: Git,
    from_env: str,
    to_env: str,
    services: Sequence[str] | None = None,
    policy: PushPolicy | None = None,
) -> CommitResult:
    """Copy the exact digests pinned in `from_env` to `to_env` (one commit, or none if equal).

    An explicit act: never refused as stale. Each service's source goes along as a
    `Promoted-Source` trailer, so later bumps of `to_env` are ordered against it.
    """
    policy = policy or PushPolicy()
    if from_env == to_env:
        raise ValueError("promote: --from and --to name the same environment")
    sync_branch(git, policy)
    chosen = list(services) if services else environment_services(git.workdir, from_env)
    images: dict[str, ImageRef] = {}
    sources: list[tuple[str, str]] = []
    for service in chosen:
        ref = read_image(values_path(git.workdir, service, from_env))
        if ref is None:
            raise GitOpsError(f"promote: {service} has no image pinned in {from_env}")
        images[service] = ref
        source = pinned_source(git, service, from_env)
        if source:
            sources.append((PROMOTED_SOURCE_TRAILER, f"{service}={source}"))
    if not images:
        raise GitOpsError(f"promote: no service has a values-{from_env}.yaml")
    return bump(
        git,
        to_env,
        images,
        git.head(),
        policy,
        verb="promote",
        extra_trailers=[(PROMOTED_FROM_TRAILER, from_env), *sources],
        refuse_stale=False,
    )


def env_commits_since(git: Git, env: str, since: str) -> list[tuple[str, str]]:
    """(sha, subject) of the commits after `since` that changed `env`, newest first."""
    fmt = f"%H%x1f%s%x1f%(trailers:key={ENV_TRAILER},valueonly,separator=%x2C)"
    out = git.run("log", "--no-merges", f"--format={fmt}", f"{since}..HEAD")
    commits = []
    for line in out.splitlines():
        sha, subject, envs = line.split("\x1f")
        if env in {value.strip() for value in envs.split(",")}:
            commits.append((sha, subject))
    return commits


def _revert_env_commits(git: Git, env: str, to_commit: str, start: str) -> list[str]:
    """Revert each env commit after `to_commit`, newest first, one new commit each."""
    try:
        target = git.run("rev-parse", "--verify", "--quiet", f"{to_commit}^{{commit}}")
    except GitError as exc:
        raise GitOpsError(f"rollback: --to {to_commit!r} is not a commit") from exc
    if not git.succeeds("merge-base", "--is-ancestor", target, start):
        raise GitOpsError(f"rollback: --to {to_commit!r} is not an ancestor of the branch")
    reverted = []
    for sha, subject in env_commits_since(git, env, target):
        try:
            git.run("revert", "--no-commit", sha)
        except GitError as exc:
            files = ", ".join(_conflicting_files(git)) or "the work tree"
            raise ConflictError(
                f"rollback: reverting {sha[:12]} ({subject}) conflicts in {files}"
            ) from exc
        if git.succeeds("diff", "--cached", "--quiet"):
            continue  # already undone by a later commit
        message = (
            f"rollback({env}): revert {sha[:12]} {SKIP_CI_MARKER}\n\n"
            f'Reverts "{subject}".\n\n{REVERTS_TRAILER}: {sha}\n{ENV_TRAILER}: {env}\n'
        )
        git.run("commit", "--quiet", "--no-verify", "-F", "-", stdin=message)
        reverted.append(sha)
    return reverted


def rollback(git: Git, env: str, to_commit: str, policy: PushPolicy | None = None) -> CommitResult:
    """Revert, newest first, every commit after `to_commit` that changed `env`, as new commits.

    The result pins exactly what `env` pinned at `to_commit`; history is kept (Argo CD's
    documented rollback under automated sync is a git revert). Other environments are untouched.
    An explicit act: it is never refused as stale; a lost push race redoes it on the new tip.
    """
    policy = policy or PushPolicy()
    check_label("environment", env)

    def revert_all(tip: str) -> str | None:
        return git.head() if _revert_env_commits(git, env, to_commit, tip) else None

    commit, attempts = redo_until_pushed(git, policy, revert_all)
    return CommitResult(commit=commit, attempts=attempts)


def bump_to_branch(
    git: Git,
    env: str,
    images: Mapping[str, ImageRef],
    source_sha: str,
    new_branch: str,
    policy: PushPolicy | None = None,
) -> CommitResult:
    """Like `bump`, but commit on a new branch off the tip (for a pull request) and push it."""
    policy = policy or PushPolicy()
    start = sync_branch(git, policy)
    changes: list[ImageChange] = []
    commit: str | None = None
    try:
        git.run("checkout", "--quiet", "-B", new_branch, start)
        for service, ref in sorted(images.items()):
            change = set_image(values_path(git.workdir, service, env), service, env, ref)
            if change:
                changes.append(change)
        paths = [values_path(git.workdir, c.service, env) for c in changes]
        commit = (
            commit_paths(git, paths, bump_message(env, changes, source_sha)) if changes else None
        )
        if commit is not None:
            git.run(
                "push",
                "--porcelain",
                "--force-with-lease",
                policy.remote,
                f"HEAD:refs/heads/{new_branch}",
            )
    finally:
        git.run("checkout", "--quiet", "--force", policy.branch)
        git.run("reset", "--quiet", "--hard", start)
    return CommitResult(commit=commit, changes=tuple(changes) if commit else ())
