"""Tags and versions for branch, main and release-tag builds, from real git repositories."""

from __future__ import annotations

import pytest
from ci.core.gitfacts import GitFacts, head_facts
from ci.core.versions import VersionError, build_version, slug
from pipeline.repos import Repo


def test_main_build_is_tagged_main_and_short_sha(repo: Repo) -> None:
    sha = repo.git("rev-parse", "HEAD")

    version = build_version("auth", head_facts(repo.root, env={}))

    assert version.tags == [f"main-{sha[:7]}"]
    assert version.version == f"main-{sha[:7]}"
    assert version.revision == sha
    assert not version.release


def test_branch_build_is_tagged_with_the_branch_slug(repo: Repo) -> None:
    repo.git("checkout", "-q", "-b", "feature/Login_Rate-Limit")
    sha = repo.commit({"services/auth/x.py": ""})

    version = build_version("auth", head_facts(repo.root, env={}))

    assert version.tags == [f"feature-login-rate-limit-{sha[:7]}"]


def test_release_tag_build_is_tagged_with_the_version(repo: Repo) -> None:
    sha = repo.commit({"services/auth/x.py": ""})
    repo.git("tag", "auth-v1.4.0")
    repo.git("tag", "backend-v2.0.0")

    facts = head_facts(repo.root, env={})

    assert facts.tags == ("auth-v1.4.0", "backend-v2.0.0")
    auth = build_version("auth", facts)
    assert (auth.version, auth.tags, auth.release) == ("1.4.0", ["1.4.0", sha[:7]], True)
    assert build_version("backend", facts).version == "2.0.0"
    assert build_version("frontend", facts).tags == [f"main-{sha[:7]}"]


def test_detached_head_in_ci_takes_branch_and_tag_from_the_environment(repo: Repo) -> None:
    sha = repo.git("rev-parse", "HEAD")
    repo.git("checkout", "-q", "--detach")

    assert head_facts(repo.root, env={}).branch is None
    assert build_version("auth", head_facts(repo.root, env={})).tags == [f"sha-{sha[:7]}"]
    on_branch = head_facts(repo.root, env={"GITHUB_REF_TYPE": "branch", "GITHUB_REF_NAME": "x/y"})
    assert build_version("auth", on_branch).tags == [f"x-y-{sha[:7]}"]
    on_tag = head_facts(repo.root, env={"GITHUB_REF_TYPE": "tag", "GITHUB_REF_NAME": "auth-v0.1.0"})
    assert build_version("auth", on_tag).version == "0.1.0"


def test_prerelease_tags_are_versions() -> None:
    facts = GitFacts(sha="a" * 40, branch=None, tags=("auth-v2.0.0-rc.1",))
    assert build_version("auth", facts).version == "2.0.0-rc.1"


@pytest.mark.parametrize("tag", ["auth-v1.2", "auth-v01.2.3", "auth-v1.2.3+build.5", "auth-vX"])
def test_malformed_release_tag_is_an_error(tag: str) -> None:
    with pytest.raises(VersionError, match="is not a semantic version"):
        build_version("auth", GitFacts(sha="b" * 40, tags=(tag,)))


def test_bad_sha_is_an_error() -> None:
    with pytest.raises(VersionError, match="not a full lowercase git sha"):
        build_version("auth", GitFacts(sha="abc123", branch="main"))


@pytest.mark.parametrize(
    ("branch", "expected"),
    [
        ("Feature/ABC-123_fix", "feature-abc-123-fix"),
        ("--weird--", "weird"),
        ("///", "branch"),
        ("a" * 60 + "-b", "a" * 48),
        ("renovate/a" + "-" * 50, "renovate-a"),
    ],
)
def test_slug(branch: str, expected: str) -> None:
    assert slug(branch) == expected
