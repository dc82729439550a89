"""Facts read from a git checkout: changed files since a base, HEAD's sha, branch and tags.

These are the only inputs of the plan and the tags that come from outside; everything else is
computed from them by pure functions. Each git call has a timeout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

GIT_TIMEOUT_SECONDS = 30.0


class GitError(RuntimeError):
    """A git command failed; the message says which one and why."""


class GitUnavailableError(GitError):
    """git could not run at all (not installed, no such directory, timed out)."""


@dataclass(frozen=True)
class GitFacts:
    """What a build knows about its commit."""

    sha: str
    branch: str | None = None
    tags: tuple[str, ...] = ()


def git(root: Path, *args: str) -> str:
    """Run `git <args>` in `root` and return its stdout; GitError on any failure."""
    executable = shutil.which("git")
    if executable is None:
        raise GitUnavailableError("git is not installed")
    try:
        done = subprocess.run(  # noqa: S603 - fixed executable, arguments are not a shell string
            [executable, *args],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise GitUnavailableError(
            f"git {' '.join(args)} timed out after {GIT_TIMEOUT_SECONDS:.0f}s"
        ) from exc
    except OSError as exc:  # e.g. the directory does not exist
        raise GitUnavailableError(
            f"git {' '.join(args)} cannot run in {root}: {exc.strerror}"
        ) from exc
    if done.returncode != 0:
        detail = done.stderr.strip() or done.stdout.strip() or f"exit status {done.returncode}"
        raise GitError(f"git {' '.join(args)} failed: {detail}")
    return done.stdout


def resolve(root: Path, ref: str) -> str:
    """The commit sha `ref` names; GitError if it names none."""
    if not ref or ref.startswith("-"):
        raise GitError(f"invalid git ref {ref!r}")
    try:
        return git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").strip()
    except GitUnavailableError:
        raise
    except GitError as exc:
        raise GitError(f"unknown git ref {ref!r}: no such commit in {root}") from exc


def changed_files(root: Path, base: str, head: str = "HEAD") -> list[str]:
    """Paths changed on `head` since it forked from `base` (`git diff --name-only base...head`)."""
    base_sha, head_sha = resolve(root, base), resolve(root, head)
    out = git(root, "diff", "--name-only", "--no-renames", f"{base_sha}...{head_sha}")
    return sorted({line for line in out.splitlines() if line})


def head_facts(root: Path, env: Mapping[str, str] | None = None) -> GitFacts:
    """sha, branch and tags of HEAD; CI environments with a detached HEAD name the branch in env.

    GitHub Actions sets GITHUB_REF_TYPE (branch|tag) and GITHUB_REF_NAME.
    """
    env = os.environ if env is None else env
    sha = resolve(root, "HEAD")
    tags = tuple(sorted(git(root, "tag", "--points-at", sha).split()))
    branch: str | None = git(root, "rev-parse", "--abbrev-ref", "HEAD").strip()
    if branch == "HEAD":
        branch = None
    if env.get("GITHUB_REF_TYPE") == "branch" and env.get("GITHUB_REF_NAME"):
        branch = env["GITHUB_REF_NAME"]
    if env.get("GITHUB_REF_TYPE") == "tag" and env.get("GITHUB_REF_NAME"):
        tags = tuple(sorted({*tags, env["GITHUB_REF_NAME"]}))
    return GitFacts(sha=sha, branch=branch, tags=tags)
