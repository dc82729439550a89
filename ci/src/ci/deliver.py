"""Command line of the delivery core: `python -m ci.deliver <command> ...` (run from ci/src).

The Dagger functions deploy / promote / rollback / preview / preview-destroy / preview-gc /
release run exactly these commands inside a small container with git; they also run on any
host with git. Secrets come from the environment only: GIT_TOKEN (push over HTTPS),
REGISTRY_USERNAME / REGISTRY_PASSWORD (registry API), GITHUB_TOKEN (PR comment, release PR).
Exit status: 0 done (including "nothing to do"), 1 operation failed, 2 bad usage or input.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ci.core import gitops, preview, release
from ci.core.catalog import CatalogError, load_catalog
from ci.core.github import GitHub, GitHubError, preview_comment, preview_marker
from ci.core.gitrepo import Git, GitError, token_environment
from ci.core.registry import ImageName, RegistryClient, RegistryError
from ci.core.yamlfile import YamlFileError, load

DEFAULT_NAME = "chat-platform-ci"
DEFAULT_EMAIL = "chat-platform-ci@users.noreply.github.com"


class UsageError(ValueError):
    """Bad arguments: exit status 2."""


# --- repository and clients -----------------------------------------------------------------


def identity_env(workdir: Path) -> dict[str, str]:
    """Commit identity from the environment, else the clone's config, else the CI bot."""
    probe = Git(workdir)
    name = os.environ.get("GIT_AUTHOR_NAME") or probe.run("config", "user.name", check=False)
    email = os.environ.get("GIT_AUTHOR_EMAIL") or probe.run("config", "user.email", check=False)
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
            extra = token_environment(token, host)
        workdir = Path(tempfile.mkdtemp(prefix="deliver-"))
        Git(workdir, extra).run("clone", "--quiet", "--branch", args.branch, args.clone, ".")
    else:
        workdir = Path(args.repo).resolve()
        if not (workdir / ".git").exists():
            raise UsageError(f"--repo {args.repo}: not a git work tree")
    return Git(workdir, {**extra, **identity_env(workdir)})


def policy(args: argparse.Namespace) -> gitops.PushPolicy:
    if args.max_attempts < 1:
        raise UsageError("--max-attempts must be at least 1")
    return gitops.PushPolicy(remote=args.remote, branch=args.branch, max_attempts=args.max_attempts)


def registry_client(base_url: str) -> RegistryClient:
    return RegistryClient(
        base_url,
        os.environ.get("REGISTRY_USERNAME") or None,
        os.environ.get("REGISTRY_PASSWORD") or None,
    )


def image_repository(root: Path, service: str, env: str, insecure: bool) -> ImageName:
    """Where the service's image lives, from the `image.repository` of its values file."""
    path = gitops.values_path(root, service, env)
    data = load(path)
    repository = data.get("image", {}).get("repository") if hasattr(data, "get") else None
    if not isinstance(repository, str) or not repository:
        raise YamlFileError(f"{path}: field 'image.repository' is missing")
    return ImageName.parse(repository, insecure=insecure)


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


def github_client() -> GitHub | None:
    token = os.environ.get("GITHUB_TOKEN")
    return (
        GitHub(token, os.environ.get("GITHUB_API_URL", "https://api.github.com")) if token else None
    )


# --- commands ---------------------------------------------------------------------------------


def cmd_bump(args: argparse.Namespace) -> dict[str, Any]:
    repo = open_repo(args)
    result = gitops.bump(repo, args.env, parse_images(args.image), args.source, policy(args))
    return {
        "commit": result.commit,
        "attempts": result.attempts,
        "changes": [change.line() for change in result.changes],
    }


def cmd_promote(args: argparse.Namespace) -> dict[str, Any]:
    repo = open_repo(args)
    result = gitops.promote(repo, args.from_env, args.to_env, args.service or None, policy(args))
    return {"commit": result.commit, "changes": [c.line() for c in result.changes]}


def cmd_rollback(args: argparse.Namespace) -> dict[str, Any]:
    repo = open_repo(args)
    result = gitops.rollback(repo, args.env, args.to, policy(args))
    return {"commit": result.commit}


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


def cmd_preview(args: argparse.Namespace) -> dict[str, Any]:
    repo = open_repo(args)
    images = parse_images(args.image)
    spec = preview.build_preview(
        args.preview_branch, images, args.domain, now_from(args), timedelta(hours=args.ttl_hours)
    )

    def in_registry(service: str, ref: gitops.ImageRef) -> bool:
        name = image_repository(repo.workdir, service, args.values_env, args.insecure_registry)
        with registry_client(name.base_url) as client:
            return client.head_digest(name.repository, ref.digest) == ref.digest

    verify = None if args.no_verify else in_registry
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
    repo = open_repo(args)
    commit = preview.destroy_preview(repo, args.preview_branch, policy(args))
    out: dict[str, Any] = {"commit": commit, "slug": preview.preview_slug(args.preview_branch)}
    client = github_client()
    if client and args.github_repo and args.pr:
        body = f"{preview_marker()}\n### Preview environment\n\nDestroyed (pull request closed)."
        with client:
            out["comment"] = client.upsert_comment(
                args.github_repo, args.pr, body, preview_marker()
            ).action
    return out


def cmd_preview_gc(args: argparse.Namespace) -> dict[str, Any]:
    repo = open_repo(args)
    removed, problems = preview.gc_previews(repo, now_from(args), policy(args))
    return {"removed": removed, "problems": problems}


def cmd_release(args: argparse.Namespace) -> dict[str, Any]:
    repo = open_repo(args)
    push = policy(args)
    gitops.sync_branch(repo, push)
    catalog = load_catalog(repo.workdir)
    plans = release.plan_releases(repo, catalog, args.service or None)
    out: dict[str, Any] = {
        "releases": {
            p.service: {"from": str(p.previous or ""), "to": str(p.version)} for p in plans
        }
    }
    if args.dry_run or not plans:
        return out
    digests: dict[str, str] = {}
    retagged: set[str] = set()

    def retag(plan: release.ReleasePlan) -> None:
        pinned = gitops.read_image(gitops.values_path(repo.workdir, plan.service, args.from_env))
        if pinned is None:
            raise gitops.GitOpsError(f"release: {plan.service} has no image in {args.from_env}")
        name = image_repository(repo.workdir, plan.service, args.from_env, args.insecure_registry)
        with registry_client(name.base_url) as client:
            digests[plan.service] = client.retag(name.repository, pinned.digest, str(plan.version))
        retagged.add(plan.tag)

    for plan in plans:  # images first: a re-run after a failure retags again, harmlessly
        retag(plan)
    tagged = release.tag_releases(repo, catalog, date.today(), args.service or None, push)
    for plan in tagged:  # a commit landed in between: versions moved, retag those too
        if plan.tag not in retagged:
            retag(plan)
    images = {p.service: gitops.ImageRef(str(p.version), digests[p.service]) for p in tagged}
    out["tags"] = [p.tag for p in tagged]
    if not images:
        return out
    if args.mode == "commit":
        result = gitops.bump(repo, args.to_env, images, repo.head(), push, verb="release")
        out["production_commit"] = result.commit
    else:
        branch = "release/" + "-".join(sorted(p.tag for p in tagged))
        result = gitops.bump_to_branch(repo, args.to_env, images, repo.head(), branch, push)
        out["production_branch"] = branch
        client = github_client()
        if client and args.github_repo and result.commit:
            with client:
                out["pull_request"] = client.open_pull_request(
                    args.github_repo,
                    branch,
                    args.branch,
                    f"release({args.to_env}): " + ", ".join(out["tags"]),
                    "Pins the released digests in production.",
                )
    return out


# --- argument parsing ---------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m ci.deliver", description=__doc__)
    common = argparse.ArgumentParser(add_help=False)
    where = common.add_mutually_exclusive_group()
    where.add_argument("--repo", default=".", help="an existing clone to work in (default: .)")
    where.add_argument("--clone", help="clone this URL into a temp dir (token: GIT_TOKEN)")
    common.add_argument("--remote", default="origin")
    common.add_argument("--branch", default="main", help="the deployment branch")
    common.add_argument("--max-attempts", type=int, default=10, help="push attempts (rebase+retry)")
    common.add_argument("--now", help="RFC 3339 time to use as 'now' (tests, replays)")
    common.add_argument("--insecure-registry", action="store_true", help="registry over http")
    sub = root.add_subparsers(dest="command", required=True)

    bump = sub.add_parser("bump", parents=[common], help="pin images in values-<env>.yaml")
    bump.add_argument("--env", required=True)
    bump.add_argument("--image", action="append", default=[], help="svc=tag@sha256:...")
    bump.add_argument("--source", required=True, help="the commit the images were built from")
    bump.set_defaults(run=cmd_bump)

    prom = sub.add_parser("promote", parents=[common], help="copy digests between environments")
    prom.add_argument("--from", dest="from_env", required=True)
    prom.add_argument("--to", dest="to_env", required=True)
    prom.add_argument("--service", action="append", default=[])
    prom.set_defaults(run=cmd_promote)

    back = sub.add_parser("rollback", parents=[common], help="revert an env's bumps after --to")
    back.add_argument("--env", required=True)
    back.add_argument("--to", required=True, help="the commit whose state to return to")
    back.set_defaults(run=cmd_rollback)

    prev = sub.add_parser("preview", parents=[common], help="write a branch's preview file")
    prev.add_argument("--preview-branch", required=True, help="the branch being previewed")
    prev.add_argument("--image", action="append", default=[], help="svc=tag@sha256:...")
    prev.add_argument("--domain", required=True, help="preview hosts are <slug>.<domain>")
    prev.add_argument("--ttl-hours", type=float, default=72.0)
    prev.add_argument("--max-previews", type=int, default=20)
    prev.add_argument("--values-env", default="preview", help="values file naming the image repo")
    prev.add_argument("--no-verify", action="store_true", help="skip the registry check")
    prev.add_argument("--github-repo", help="owner/name for the PR comment (GITHUB_TOKEN)")
    prev.add_argument("--pr", type=int, help="pull request number for the comment")
    prev.set_defaults(run=cmd_preview)

    destroy = sub.add_parser("preview-destroy", parents=[common], help="remove a preview")
    destroy.add_argument("--preview-branch", required=True)
    destroy.add_argument("--github-repo")
    destroy.add_argument("--pr", type=int)
    destroy.set_defaults(run=cmd_preview_destroy)

    gc = sub.add_parser("preview-gc", parents=[common], help="remove expired previews")
    gc.set_defaults(run=cmd_preview_gc)

    rel = sub.add_parser("release", parents=[common], help="tag, retag images, pin production")
    rel.add_argument("--service", action="append", default=[])
    rel.add_argument("--from-env", default="staging", help="whose digests are released")
    rel.add_argument("--to-env", default="production")
    rel.add_argument("--mode", choices=["commit", "pull-request"], default="commit")
    rel.add_argument("--github-repo", help="owner/name to open the release PR in")
    rel.add_argument("--dry-run", action="store_true", help="print the plan only")
    rel.set_defaults(run=cmd_release)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        result = args.run(args)
    except (UsageError, ValueError, CatalogError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (gitops.GitOpsError, GitError, RegistryError, GitHubError, preview.PreviewError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
