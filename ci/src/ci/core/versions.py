"""Image tags and versions from git facts.

- a release tag `<service>-v<semver>` on HEAD -> version `<semver>`, tags `<semver>`, `<sha7>`
- the main branch                           -> `main-<sha7>`
- any other branch                          -> `<branch slug>-<sha7>`
- a detached HEAD without a branch          -> `sha-<sha7>`
Tags of other services are ignored: each service is released on its own.
"""

from __future__ import annotations

import hashlib
import re

from pydantic import BaseModel, ConfigDict

from ci.core.gitfacts import GitFacts

SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?$"
)
SHA = re.compile(r"^[0-9a-f]{40}$")
SLUG_MAX = 48
# A preview's slug (preview-<slug> is its namespace): readable prefix, hash of the branch.
PREVIEW_SLUG_MAX = 40
PREVIEW_HASH_CHARS = 10
MAIN_BRANCH = "main"


class VersionError(ValueError):
    """The git facts do not make a valid version (bad sha, malformed release tag)."""


class BuildVersion(BaseModel):
    """What a build is called: VERSION build arg, REVISION, and the image tags to push."""

    model_config = ConfigDict(frozen=True)

    version: str
    revision: str
    tags: list[str]
    release: bool


def short_sha(sha: str) -> str:
    if not SHA.match(sha):
        raise VersionError(f"not a full lowercase git sha: {sha!r}")
    return sha[:7]


def slug(branch: str) -> str:
    """A tag- and DNS-safe slug of a branch name: lowercase, [a-z0-9-], at most 48 characters."""
    text = re.sub(r"[^a-z0-9]+", "-", branch.lower()).strip("-")
    text = text[:SLUG_MAX].rstrip("-")
    return text or "branch"


def preview_slug(branch: str) -> str:
    """A DNS-1123 label (<= 40 chars) for `branch`: readable prefix + hash of the full name.

    The prefix keeps it recognisable; the 40-bit hash of the exact branch name keeps two names
    that read alike (`feat/x` and `feat-x`, or long names sharing a prefix) apart. Stable: the
    same branch always gives the same slug.
    """
    if not branch:
        raise ValueError("branch name is empty")
    digest = hashlib.sha256(branch.encode("utf-8", "surrogatepass")).hexdigest()[
        :PREVIEW_HASH_CHARS
    ]
    prefix = slug(branch)[: PREVIEW_SLUG_MAX - PREVIEW_HASH_CHARS - 1].rstrip("-") or "branch"
    return f"{prefix}-{digest}"


def release_version(service: str, tag: str) -> str | None:
    """The semver of `tag` when it is a release tag of `service`, else None.

    Raises VersionError when the tag is meant for the service but is not valid semver.
    """
    prefix = f"{service}-v"
    if not tag.startswith(prefix):
        return None
    version = tag[len(prefix) :]
    if not SEMVER.match(version):
        raise VersionError(
            f"release tag {tag!r}: {version!r} is not a semantic version "
            "(MAJOR.MINOR.PATCH[-prerelease])"
        )
    return version


def build_version(service: str, facts: GitFacts, main_branch: str = MAIN_BRANCH) -> BuildVersion:
    sha7 = short_sha(facts.sha)
    releases = [v for tag in facts.tags if (v := release_version(service, tag)) is not None]
    if len(releases) > 1:
        raise VersionError(f"HEAD carries several release tags of {service}: {releases}")
    if releases:
        return BuildVersion(
            version=releases[0], revision=facts.sha, tags=[releases[0], sha7], release=True
        )
    if facts.branch == main_branch:
        name = f"{main_branch}-{sha7}"
    elif facts.branch:
        name = f"{slug(facts.branch)}-{sha7}"
    else:
        name = f"sha-{sha7}"
    return BuildVersion(version=name, revision=facts.sha, tags=[name], release=False)
