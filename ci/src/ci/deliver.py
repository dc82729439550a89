"""Command line of the delivery core: `python -m ci.deliver <command> ...` (run from ci/src).

The Dagger functions deploy / promote / rollback / preview / preview-destroy / preview-gc /
release run exactly these commands inside a small container with git; they also run on any
host with git. Secrets come from the environment only: GIT_TOKEN (push over HTTPS),
REGISTRY_USERNAME / REGISTRY_PASSWORD (registry API), GITHUB_TOKEN (PR comment, release PR).
Exit status: 0 done (including "nothing to do"), 1 operation failed, 2 bad usage or input.
Every argument is checked before the clone is touched; bad input commits and pushes nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

# Only what every command needs is imported here; the registry, GitHub, preview and release
# modules (httpx, pydantic) load with the command that uses them: a bump starts ~1.5 s sooner.
from ci.core import bumpqueue, gitops
from ci.core.gitrepo import Git, GitError, token_environment

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey

    from ci.core.github import GitHub
    from ci.core.registry import ImageName, RegistryClient

DEFAULT_NAME = "chat-platform-ci"
DEFAULT_EMAIL = "chat-platform-ci@users.noreply.github.com"
GITHUB_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
BRANCH = re.compile(r"^(?!-)(?!.*\.\.)(?!.*//)[A-Za-z0-9._/-]+(?<![./])$")
DOMAIN_MAX = 253
T = TypeVar("T")


class UsageError(ValueError):
    """Bad arguments: exit status 2."""


class CommandFailedError(RuntimeError):
    """The operation failed (registry, GitHub, preview rules): exit status 1."""


@contextmanager
def failures(*kinds: type[BaseException]) -> Iterator[None]:
    """Report the given errors of a lazily imported module as an operation failure (exit 1)."""
    try:
        yield
    except kinds as exc:
        raise CommandFailedError(str(exc)) from exc


# --- argument checks (no repository needed) ---------------------------------------------------


def check(argument: str, value: str, validate: Callable[[str], T]) -> T:
    """`validate(value)`, turning its ValueError into a usage error naming the argument."""
    try:
        return validate(value)
    except ValueError as exc:
        raise UsageError(f"{argument} {value!r}: {exc}") from exc


def check_branch(argument: str, value: str) -> str:
    if not BRANCH.fullmatch(value) or value.endswith(".lock"):
        raise UsageError(f"{argument} {value!r}: not a valid branch name")
    return value


def check_domain(value: str) -> str:
    """A DNS name whose every label is a DNS-1123 label (preview hosts are <slug>.<domain>)."""
    name = value.strip().rstrip(".")
    labels = name.split(".")
    if not name or len(name) > DOMAIN_MAX - 41 or len(labels) < 2:
        raise UsageError(f"--domain {value!r}: expected a DNS name such as preview.example.com")
    for label in labels:
        if not gitops.DNS_LABEL.fullmatch(label):
            raise UsageError(f"--domain {value!r}: {label!r} is not a DNS-1123 label")
    return name


def check_common(args: argparse.Namespace) -> None:
    if args.max_attempts < 1:
        raise UsageError(f"--max-attempts {args.max_attempts}: must be at least 1")
    if not args.remote or args.remote.startswith("-"):
        raise UsageError(f"--remote {args.remote!r}: not a remote name")
    check_branch("--branch", args.branch)
    if args.now:
        now_from(args)


def check_envs(*pairs: tuple[str, str]) -> None:
    for argument, env in pairs:
        check(argument, env, lambda v: gitops.check_label("environment", v))


def parse_images(values: Sequence[str]) -> dict[str, gitops.ImageRef]:
    images: dict[str, gitops.ImageRef] = {}
    for value in values:
        service, sep, ref = value.partition("=")
        if not sep:
            raise UsageError(f"--image {value!r}: expected <service>=<tag>@sha256:<digest>")
        try:
            images[gitops.check_label("service", service)] = gitops.ImageRef.parse(ref)
        except ValueError as exc:
            raise UsageError(f"--image {value!r}: {exc}") from exc
    if not images:
        raise UsageError("give at least one --image <service>=<tag>@sha256:<digest>")
    return images


def now_from(args: argparse.Namespace) -> datetime:
    if not args.now:
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(args.now.replace("Z", "+00:00"))
    except ValueError as exc:
        raise UsageError(f"--now {args.now!r}: not an RFC 3339 time") from exc
    if value.tzinfo is None:
        raise UsageError(f"--now {args.now!r}: give a time zone (e.g. Z)")
    return value.astimezone(UTC)


def check_github(args: argparse.Namespace) -> None:
    if args.github_repo is not None and not GITHUB_REPO.fullmatch(args.github_repo):
        raise UsageError(f"--github-repo {args.github_repo!r}: expected <owner>/<name>")
    if getattr(args, "pr", None) is not None and args.pr < 1:
        raise UsageError(f"--pr {args.pr}: must be a pull request number (1 or more)")


# --- checks against the clone (before anything is changed) ------------------------------------


def known_environment(repo: Git, argument: str, env: str) -> str:
    return check(argument, env, lambda v: gitops.check_environment(repo.workdir, v))


def deployed_services(repo: Git, argument: str, services: Sequence[str], env: str) -> None:
    """Each service must have a values file for `env` (it is deployed there)."""
    known = gitops.environment_services(repo.workdir, env)
    for service in services:
        if service not in known:
            raise UsageError(
                f"{argument} {service!r}: no charts/{service}/values-{env}.yaml with a "
                f"services/{service}/service.yaml (known: {', '.join(known) or 'none'})"
            )


# --- repository and clients -----------------------------------------------------------------


def identity_env(workdir: Path) -> dict[str, str]:
    """Commit identity from the environment, else the clone's config, else the CI bot."""
    name = os.environ.get("GIT_AUTHOR_NAME")
    email = os.environ.get("GIT_AUTHOR_EMAIL")
    if not (name and email):
        config = (
            Git(workdir)
            .run("config", "--get-regexp", r"^user\.(name|email)$", check=False)
            .splitlines()
        )
        found = dict(line.partition(" ")[::2] for line in config)
        name = name or found.get("user.name")
        email = email or found.get("user.email")
    name, email = name or DEFAULT_NAME, email or DEFAULT_EMAIL
    return {
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
    }


def open_repo(args: argparse.Namespace) -> Git:
    """The clone to work in: --repo, or a fresh clone of --clone (token from GIT_TOKEN)."""
    extra: dict[str, str] = {}
    token = os.environ.get("GIT_TOKEN")
    if args.clone:
        host = urlsplit(args.clone).hostname
        if token and host:
            extra = token_environment(host)
        workdir = Path(tempfile.mkdtemp(prefix="deliver-"))
        Git(workdir, extra).run("clone", "--quiet", "--branch", args.branch, args.clone, ".")
    else:
        workdir = Path(args.repo).resolve()
        if not (workdir / ".git").exists():
            raise UsageError(f"--repo {args.repo}: not a git work tree")
    return Git(workdir, {**extra, **identity_env(workdir)})


def policy(args: argparse.Namespace) -> gitops.PushPolicy:
    return gitops.PushPolicy(remote=args.remote, branch=args.branch, max_attempts=args.max_attempts)


def registry_client(base_url: str) -> RegistryClient:
    from ci.core.registry import RegistryClient

    return RegistryClient(
        base_url,
        os.environ.get("REGISTRY_USERNAME") or None,
        os.environ.get("REGISTRY_PASSWORD") or None,
    )


def image_repository(root: Path, service: str, env: str, insecure: bool) -> ImageName:
    """Where the service's image lives, from the `image.repository` of its values file."""
    from ci.core.registry import ImageName
    from ci.core.yamlfile import YamlFileError, read_data

    path = gitops.values_path(root, service, env)
    data = read_data(path)
    repository = data.get("image", {}).get("repository") if hasattr(data, "get") else None
    if not isinstance(repository, str) or not repository:
        raise YamlFileError(f"{path}: field 'image.repository' is missing")
    return ImageName.parse(repository, insecure=insecure)


def github_client() -> GitHub | None:
    from ci.core.github import GitHub

    token = os.environ.get("GITHUB_TOKEN")
    return (
        GitHub(token, os.environ.get("GITHUB_API_URL", "https://api.github.com")) if token else None
    )


def check_signatures(
    args: argparse.Namespace, repo: Git, env: str, images: Mapping[str, gitops.ImageRef]
) -> list[str]:
    """Refuse (exit 1) unless every digest about to be pinned carries a cosign signature that
    verifies against --public-key (ci.core.signing); --allow-unsigned lets the others through,
    each named on stderr (without a key, nothing is looked up)."""
    from ci.core import signing

    key = signature_key(args)
    findings = []
    for service, ref in sorted(images.items()):
        name = image_repository(repo.workdir, service, env, args.insecure_registry)
        where = f"{name.base_url.split('://', 1)[1]}/{name.repository}"
        if key is None:
            findings.append(signing.Finding(service, where, ref.digest, signing.Status.NOT_CHECKED))
            continue
        with registry_client(name.base_url) as client:
            status, detail = signing.verify_image(client, name.repository, ref.digest, key)
        findings.append(signing.Finding(service, where, ref.digest, status, detail))
    with failures(signing.SignatureError):
        verdict = signing.decide(findings, args.allow_unsigned)
    for warning in verdict.warnings:
        print(warning, file=sys.stderr)
    return list(verdict.warnings)


def signature_key(args: argparse.Namespace) -> EllipticCurvePublicKey | None:
    """--public-key, loaded; None with --allow-unsigned and no key (nothing is looked up).
    With both, the digests are still checked, so each warning says what is wrong."""
    if args.allow_unsigned and not args.public_key:
        return None
    return public_key(args.public_key)


def public_key(path: str | None) -> EllipticCurvePublicKey:
    from ci.core.signing import PublicKeyError, load_public_key

    if not path:
        raise UsageError(
            "--public-key FILE (cosign.pub) is required to verify the image signatures; "
            "--allow-unsigned skips the check, for local use only"
        )
    try:
        return load_public_key(Path(path))
    except PublicKeyError as exc:
        raise UsageError(f"--public-key {exc}") from exc


def pinned_images(repo: Git, env: str, services: Sequence[str]) -> dict[str, gitops.ImageRef]:
    """The images `env` pins, of `services` (all of its services when none is named)."""
    names = services or gitops.environment_services(repo.workdir, env)
    pinned = {s: gitops.read_image(gitops.values_path(repo.workdir, s, env)) for s in names}
    return {service: ref for service, ref in pinned.items() if ref is not None}


# --- commands ---------------------------------------------------------------------------------


def cmd_bump(args: argparse.Namespace) -> dict[str, Any]:
    check_envs(("--env", args.env))
    images = parse_images(args.image)
    source = check("--source", args.source, gitops.check_source)
    signature_key(args)  # an argument like the others: checked before the clone is touched
    repo = open_repo(args)
    known_environment(repo, "--env", args.env)
    deployed_services(repo, "--image", sorted(images), args.env)
    warnings = check_signatures(args, repo, args.env, images)
    try:
        result = bumpqueue.deploy(repo, args.env, images, source, policy(args))
    except gitops.UnknownSourceError as exc:
        raise UsageError(f"--source {source}: {exc}") from exc
    out: dict[str, Any] = {
        "commit": result.commit,
        "attempts": result.attempts,
        "changes": [change.line() for change in result.changes],
        "stale": list(result.stale),
        **({"unsigned_allowed": warnings} if warnings else {}),
    }
    if result.stale and not result.changes:
        out["message"] = f"nothing to do: {args.env} already runs a newer build"
    elif result.stale:
        out["message"] = (
            f"{', '.join(result.stale)}: {args.env} already runs a newer build; left alone"
        )
    return out


def cmd_promote(args: argparse.Namespace) -> dict[str, Any]:
    check_envs(("--from", args.from_env), ("--to", args.to_env))
    if args.from_env == args.to_env:
        raise UsageError(f"--from and --to both name {args.from_env!r}")
    for service in args.service:
        check("--service", service, lambda v: gitops.check_label("service", v))
    signature_key(args)
    repo = open_repo(args)
    known_environment(repo, "--from", args.from_env)
    known_environment(repo, "--to", args.to_env)
    deployed_services(repo, "--service", args.service, args.from_env)
    images = pinned_images(repo, args.from_env, args.service)
    warnings = check_signatures(args, repo, args.from_env, images)
    result = gitops.promote(repo, args.from_env, args.to_env, args.service or None, policy(args))
    out: dict[str, Any] = {"commit": result.commit, "changes": [c.line() for c in result.changes]}
    if warnings:
        out["unsigned_allowed"] = warnings
    return {**out, **move_pin(repo, args.to_env, result.commit, policy(args))}


def move_pin(repo: Git, env: str, commit: str | None, push: gitops.PushPolicy) -> dict[str, Any]:
    """A pinned environment (production) then reads its charts at the promoted commit (or at the
    tip, to promote chart changes alone); argocd/README.md "Promotion of chart changes"."""
    from ci.core import pins

    pinned = pins.pin_revision(repo, env, commit or repo.head(), push)
    return {"pin_commit": pinned.commit, "revision": pinned.new} if pinned.commit else {}


def cmd_rollback(args: argparse.Namespace) -> dict[str, Any]:
    check_envs(("--env", args.env))
    if not args.to or args.to.startswith("-"):
        raise UsageError(f"--to {args.to!r}: not a commit")
    repo = open_repo(args)
    known_environment(repo, "--env", args.env)
    result = gitops.rollback(repo, args.env, args.to, policy(args))
    return {"commit": result.commit}


def cmd_preview(args: argparse.Namespace) -> dict[str, Any]:
    from ci.core import preview
    from ci.core.github import GitHubError, preview_comment, preview_marker
    from ci.core.registry import RegistryError

    images = parse_images(args.image)
    domain = check_domain(args.domain)
    check_envs(("--values-env", args.values_env))
    check_github(args)
    if not args.ttl_hours > 0:
        raise UsageError(f"--ttl-hours {args.ttl_hours}: must be more than 0")
    if args.max_previews < 1:
        raise UsageError(f"--max-previews {args.max_previews}: must be at least 1")
    revision = args.revision and check("--revision", args.revision, preview.check_revision)
    spec = check(
        "--preview-branch",
        args.preview_branch,
        lambda branch: preview.build_preview(
            branch, images, domain, now_from(args), timedelta(hours=args.ttl_hours), revision
        ),
    )
    repo = open_repo(args)
    deployed_services(repo, "--image", sorted(images), args.values_env)

    def in_registry(service: str, ref: gitops.ImageRef) -> bool:
        name = image_repository(repo.workdir, service, args.values_env, args.insecure_registry)
        with registry_client(name.base_url) as client:
            return client.head_digest(name.repository, ref.digest) == ref.digest

    verify = None if args.no_verify else in_registry
    with failures(preview.PreviewError, RegistryError, GitHubError):
        commit = preview.write_preview(
            repo, spec, policy(args), verify=verify, max_previews=args.max_previews
        )
        out: dict[str, Any] = {"commit": commit, **spec.model_dump(mode="json")}
        client = github_client()
        if client and args.github_repo and args.pr:
            refs = {name: f"{i.tag}@{i.digest[:19]}" for name, i in spec.images.items()}
            body = preview_comment(spec.host, spec.branch, preview.render_time(spec.expires), refs)
            with client:
                out["comment"] = client.upsert_comment(
                    args.github_repo, args.pr, body, preview_marker()
                ).action
    return out


def cmd_preview_destroy(args: argparse.Namespace) -> dict[str, Any]:
    from ci.core import preview
    from ci.core.github import GitHubError, preview_marker

    check_github(args)
    slug = check("--preview-branch", args.preview_branch, preview.preview_slug)
    repo = open_repo(args)
    with failures(preview.PreviewError, GitHubError):
        commit = preview.destroy_preview(repo, args.preview_branch, policy(args))
        out: dict[str, Any] = {"commit": commit, "slug": slug}
        client = github_client()
        if client and args.github_repo and args.pr:
            body = (
                f"{preview_marker()}\n### Preview environment\n\nDestroyed (pull request closed)."
            )
            with client:
                out["comment"] = client.upsert_comment(
                    args.github_repo, args.pr, body, preview_marker()
                ).action
    return out


def cmd_preview_gc(args: argparse.Namespace) -> dict[str, Any]:
    from ci.core import preview

    now = now_from(args)
    repo = open_repo(args)
    with failures(preview.PreviewError):
        removed, problems = preview.gc_previews(repo, now, policy(args))
    return {"removed": removed, "problems": problems}


def release_services(repo: Git, requested: Sequence[str]) -> tuple[Any, list[str]]:
    """The catalog and the services to release; every --service must be in the catalog."""
    from ci.core.catalog import CatalogError, load_catalog

    try:
        catalog = load_catalog(repo.workdir)
    except CatalogError as exc:
        raise UsageError(str(exc)) from exc
    for service in requested:
        if service not in catalog.names():
            known = ", ".join(catalog.names()) or "none"
            raise UsageError(f"--service {service!r}: not a service (known: {known})")
    return catalog, list(requested) or catalog.names()


def cmd_release(args: argparse.Namespace) -> dict[str, Any]:
    from ci.core import release
    from ci.core.registry import RegistryError

    check_envs(("--from-env", args.from_env), ("--to-env", args.to_env))
    check_github(args)
    for service in args.service:
        check("--service", service, lambda v: gitops.check_label("service", v))
    if not args.dry_run:  # a dry run reads no registry: nothing to verify
        signature_key(args)
    repo = open_repo(args)
    known_environment(repo, "--from-env", args.from_env)
    known_environment(repo, "--to-env", args.to_env)
    push = policy(args)
    if not args.dry_run:  # a dry run plans the clone's HEAD as it is: no remote needed
        gitops.sync_branch(repo, push)
    catalog, names = release_services(repo, args.service)
    plans = release.plan_releases(repo, catalog, names)
    out: dict[str, Any] = {
        "releases": {
            p.service: {"from": str(p.previous or ""), "to": str(p.version)} for p in plans
        },
        "unreleased": {
            name: release.nothing_to_release(repo, name)
            for name in names
            if name not in {p.service for p in plans}
        },
    }
    if args.dry_run or not plans:
        return out
    with failures(RegistryError):
        return release_for_real(args, repo, catalog, plans, push, out)


def release_for_real(
    args: argparse.Namespace,
    repo: Git,
    catalog: Any,
    plans: list[Any],
    push: gitops.PushPolicy,
    out: dict[str, Any],
) -> dict[str, Any]:
    """Verify the staging images' signatures, retag them, tag the releases, pin production
    (commit or pull request)."""
    from datetime import date

    from ci.core import release

    digests: dict[str, str] = {}
    retagged: set[str] = set()
    verified: dict[str, str] = {}  # service -> the digest whose signature was checked
    warnings: list[str] = []

    def staged(plans: Sequence[release.ReleasePlan]) -> dict[str, gitops.ImageRef]:
        images = {}
        for plan in plans:
            path = gitops.values_path(repo.workdir, plan.service, args.from_env)
            pinned = gitops.read_image(path)
            if pinned is None:
                raise gitops.GitOpsError(f"release: {plan.service} has no image in {args.from_env}")
            images[plan.service] = pinned
        return images

    def verify(images: Mapping[str, gitops.ImageRef]) -> None:
        """As promote does: every digest re-tagged carries a signature by --public-key."""
        unchecked = {s: ref for s, ref in images.items() if verified.get(s) != ref.digest}
        warnings.extend(check_signatures(args, repo, args.from_env, unchecked))
        verified.update({s: ref.digest for s, ref in unchecked.items()})

    def retag(plan: release.ReleasePlan, pinned: gitops.ImageRef) -> None:
        name = image_repository(repo.workdir, plan.service, args.from_env, args.insecure_registry)
        with registry_client(name.base_url) as client:
            digests[plan.service] = client.retag(name.repository, pinned.digest, str(plan.version))
        retagged.add(plan.tag)

    images = staged(plans)
    verify(images)  # all of them before anything is re-tagged: a refusal changes nothing
    for plan in plans:  # images first: a re-run after a failure retags again, harmlessly
        retag(plan, images[plan.service])
    tagged = release.tag_releases(repo, catalog, date.today(), args.service or None, push)
    moved = [plan for plan in tagged if plan.tag not in retagged]
    if moved:  # a commit landed in between: versions (maybe digests) moved, retag those too
        images = staged(moved)
        verify(images)
        for plan in moved:
            retag(plan, images[plan.service])
    if warnings:
        out["unsigned_allowed"] = warnings
    images = {p.service: gitops.ImageRef(str(p.version), digests[p.service]) for p in tagged}
    out["tags"] = [p.tag for p in tagged]
    if not images:
        return out
    if args.mode == "commit":
        result = gitops.bump(
            repo, args.to_env, images, repo.head(), push, verb="release", refuse_stale=False
        )
        out["production_commit"] = result.commit
        return {**out, **move_pin(repo, args.to_env, result.commit, push)}
    branch = "release/" + "-".join(sorted(p.tag for p in tagged))
    result = gitops.bump_to_branch(repo, args.to_env, images, repo.head(), branch, push)
    out["production_branch"] = branch
    client = github_client()
    if client and args.github_repo and result.commit:
        from ci.core.github import GitHubError

        with failures(GitHubError), client:
            out["pull_request"] = client.open_pull_request(
                args.github_repo,
                branch,
                args.branch,
                f"release({args.to_env}): " + ", ".join(out["tags"]),
                "Pins the released digests in production.",
            )
    return out


# --- argument parsing ---------------------------------------------------------------------------


def common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    where = common.add_mutually_exclusive_group()
    where.add_argument("--repo", default=".", help="an existing clone to work in (default: .)")
    where.add_argument("--clone", help="clone this URL into a temp dir (token: GIT_TOKEN)")
    common.add_argument("--remote", default="origin", help="remote to push to (default: origin)")
    common.add_argument("--branch", default="main", help="the deployment branch (default: main)")
    common.add_argument(
        "--max-attempts",
        type=int,
        default=gitops.PushPolicy().max_attempts,
        help="push attempts; after a lost race the change is made again on the new tip",
    )
    common.add_argument("--now", help="RFC 3339 time to use as 'now' (tests, replays)")
    common.add_argument(
        "--insecure-registry", action="store_true", help="talk to the registry over plain http"
    )
    return common


def add_signature_option(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--public-key",
        help="cosign public key (PEM, P-256): every digest pinned must carry a signature by it",
    )
    sub.add_argument(
        "--allow-unsigned",
        action="store_true",
        help="LOCAL USE ONLY: pin digests without checking signatures (each is named on stderr)",
    )


def add_github_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--github-repo", help="owner/name of the pull request (token: GITHUB_TOKEN)")
    sub.add_argument("--pr", type=int, help="pull request number for the comment")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m ci.deliver", description=__doc__)
    common = common_options()
    sub = root.add_subparsers(dest="command", required=True)

    bump = sub.add_parser("bump", parents=[common], help="pin images in values-<env>.yaml")
    bump.add_argument("--env", required=True, help="the environment to pin (e.g. staging)")
    bump.add_argument(
        "--image", action="append", default=[], help="<service>=<tag>@sha256:<digest>, repeatable"
    )
    bump.add_argument(
        "--source",
        required=True,
        help="the full sha of the commit the images were built from; an older one than the "
        "environment runs is refused as stale",
    )
    add_signature_option(bump)
    bump.set_defaults(run=cmd_bump)

    prom = sub.add_parser("promote", parents=[common], help="copy digests between environments")
    prom.add_argument("--from", dest="from_env", required=True, help="environment to copy from")
    prom.add_argument("--to", dest="to_env", required=True, help="environment to copy to")
    prom.add_argument(
        "--service", action="append", default=[], help="service to promote (default: all)"
    )
    add_signature_option(prom)
    prom.set_defaults(run=cmd_promote)

    back = sub.add_parser("rollback", parents=[common], help="revert an env's bumps after --to")
    back.add_argument("--env", required=True, help="the environment to roll back")
    back.add_argument("--to", required=True, help="the commit whose state to return to")
    back.set_defaults(run=cmd_rollback)

    prev = sub.add_parser("preview", parents=[common], help="write a branch's preview file")
    prev.add_argument("--preview-branch", required=True, help="the branch being previewed")
    prev.add_argument(
        "--image", action="append", default=[], help="<service>=<tag>@sha256:<digest>, repeatable"
    )
    prev.add_argument("--domain", required=True, help="preview hosts are <slug>.<domain>")
    prev.add_argument("--ttl-hours", type=float, default=72.0, help="lifetime (default: 72)")
    prev.add_argument("--max-previews", type=int, default=20, help="cap on previews at once")
    prev.add_argument("--values-env", default="preview", help="values file naming the image repo")
    prev.add_argument("--no-verify", action="store_true", help="skip the registry check")
    prev.add_argument(
        "--revision",
        help="the commit the images were built from: Argo CD reads the charts there "
        "(default: the branch)",
    )
    add_github_options(prev)
    prev.set_defaults(run=cmd_preview)

    destroy = sub.add_parser("preview-destroy", parents=[common], help="remove a preview")
    destroy.add_argument("--preview-branch", required=True, help="the branch whose preview goes")
    add_github_options(destroy)
    destroy.set_defaults(run=cmd_preview_destroy)

    gc = sub.add_parser("preview-gc", parents=[common], help="remove expired previews")
    gc.set_defaults(run=cmd_preview_gc)

    rel = sub.add_parser("release", parents=[common], help="tag, retag images, pin production")
    rel.add_argument(
        "--service", action="append", default=[], help="service to release (default: all)"
    )
    rel.add_argument("--from-env", default="staging", help="whose digests are released")
    rel.add_argument("--to-env", default="production", help="the environment to pin")
    rel.add_argument(
        "--mode",
        choices=["commit", "pull-request"],
        default="commit",
        help="pin production by a direct commit or on a release/... branch with a pull request",
    )
    rel.add_argument("--github-repo", help="owner/name to open the release PR in")
    add_signature_option(rel)
    rel.add_argument(
        "--dry-run", action="store_true", help="print the plan of the clone's HEAD only"
    )
    rel.set_defaults(run=cmd_release)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        check_common(args)
        result = args.run(args)
    except ValueError as exc:  # UsageError, and bad input found in the files
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (gitops.GitOpsError, GitError, CommandFailedError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if result.get("message"):
        print(result["message"], file=sys.stderr)
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
