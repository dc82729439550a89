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
            encoding="utf-8",  # paths are UTF-8 whatever the locale; a stray byte cannot crash us
            errors="replace",
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
    _check_ref(ref)
    try:
        return git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").strip()
    except GitUnavailableError:
        raise
    except GitError as exc:
        raise GitError(f"unknown git ref {ref!r}: no such commit in {root}") from exc


def resolve_all(root: Path, *refs: str) -> list[str]:
    """The commit shas `refs` name, in one `git rev-parse`; GitError naming the first bad ref."""
    for ref in refs:
        _check_ref(ref)
    try:
        out = git(root, "rev-parse", *(f"{ref}^{{commit}}" for ref in refs), "--")
    except GitUnavailableError:
        raise
    except GitError:
        for ref in refs:  # which one: the slow path only runs on an error
            resolve(root, ref)
        raise
    return out.split()[: len(refs)]  # rev-parse echoes the "--" after the shas


def _check_ref(ref: str) -> None:
    if not ref or ref.startswith("-"):
        raise GitError(f"invalid git ref {ref!r}")


def changed_files(root: Path, base: str, head: str = "HEAD") -> list[str]:
    """Paths changed on `head` since it forked from `base` (`git diff --name-only base...head`)."""
    return diff_names(root, *resolve_all(root, base, head))


def diff_names(root: Path, base_sha: str, head_sha: str) -> list[str]:
    """Paths changed on `head_sha` since it forked from `base_sha`: sorted, each once, as git
    prints them. `-z` prints every path as it is: without it git C-quotes non-ASCII characters,
    quotes and backslashes (core.quotePath), and the quoted form names no file."""
    out = git(root, "diff", "--name-only", "-z", "--no-renames", f"{base_sha}...{head_sha}")
    return out.split("\0")[:-1]  # every path ends with a NUL


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
