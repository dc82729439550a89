"""Promotion copies exact digests; rollback reverts an environment's bump commits."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from ci.core.gitops import (
    ConflictError,
    GitOpsError,
    ImageRef,
    PushPolicy,
    bump,
    promote,
    read_image,
    rollback,
    values_path,
)
from ci.core.gitrepo import Git
from delivery.helpers import digest_of, git

POLICY = PushPolicy(max_attempts=5)


def ref(name: str) -> ImageRef:
    return ImageRef(tag=name, digest=digest_of(name))


def test_promote_copies_exact_digests(clone: Callable[[str], Git]) -> None:
    repo = clone("a")
    source = repo.head()
    bump(repo, "staging", {"svc1": ref("s1"), "svc2": ref("s2")}, source, POLICY)
    staging_head = repo.head()

    result = promote(repo, "staging", "production", ["svc1", "svc2"], POLICY)

    assert result.commit is not None
    for service, name in (("svc1", "s1"), ("svc2", "s2")):
        assert read_image(values_path(repo.workdir, service, "production")) == ref(name)
    message = git(repo.workdir, "log", "-1", "--format=%B")
    assert message.startswith("promote(production): svc1, svc2 [skip ci]")
    assert f"Source: {staging_head}" in message
    assert "Promoted-From: staging" in message
    assert f"Promoted-Source: svc1={source}\nPromoted-Source: svc2={source}" in message
    # Same digests again: nothing to promote.
    assert promote(repo, "staging", "production", ["svc1", "svc2"], POLICY).commit is None


def test_promote_refuses_what_staging_does_not_pin(clone: Callable[[str], Git]) -> None:
    repo = clone("a")
    path = values_path(repo.workdir, "svc3", "staging")
    path.write_text(path.read_text().replace('tag: "initial"', 'tag: ""'))
    git(repo.workdir, "commit", "-qam", "unpin")
    git(repo.workdir, "push", "-q", "origin", "HEAD:main")
    with pytest.raises(GitOpsError, match="svc3 has no image pinned in staging"):
        promote(repo, "staging", "production", ["svc3"], POLICY)
    with pytest.raises(ValueError, match="same environment"):
        promote(repo, "staging", "staging", None, POLICY)


def test_rollback_reverts_only_that_environment(clone: Callable[[str], Git]) -> None:
    repo, other = clone("a"), clone("b")
    original = read_image(values_path(repo.workdir, "svc1", "staging"))
    good = repo.head()
    bump(repo, "staging", {"svc1": ref("bad1")}, repo.head(), POLICY)
    bump(
        other, "production", {"svc1": ref("prod1")}, other.head(), POLICY
    )  # another env, in between
    bump(repo, "staging", {"svc1": ref("bad2"), "svc2": ref("bad3")}, repo.head(), POLICY)

    result = rollback(repo, "staging", good, POLICY)

    assert result.commit is not None
    assert read_image(values_path(repo.workdir, "svc1", "staging")) == original
    assert read_image(values_path(repo.workdir, "svc2", "staging")) == ImageRef(
        "initial", digest_of("svc2")
    )
    assert read_image(values_path(repo.workdir, "svc1", "production")) == ref("prod1")
    subjects = git(repo.workdir, "log", "-2", "--format=%s").splitlines()
    assert all(s.startswith("rollback(staging): revert ") for s in subjects)
    assert git(repo.workdir, "rev-parse", "origin/main") == repo.head()
    # History is kept: the bad bumps are still there, undone by new commits.
    assert git(repo.workdir, "merge-base", "--is-ancestor", good, "HEAD") == ""
    # Nothing left to roll back.
    assert rollback(repo, "staging", result.commit, POLICY).commit is None


def test_rollback_to_an_unknown_commit_fails_cleanly(clone: Callable[[str], Git]) -> None:
    repo = clone("a")
    start = repo.head()
    with pytest.raises(GitOpsError, match="is not a commit"):
        rollback(repo, "staging", "deadbeef", POLICY)
    assert repo.head() == start
    assert repo.is_clean()


def test_rollback_over_a_hand_edit_stops_with_a_conflict(clone: Callable[[str], Git]) -> None:
    repo = clone("a")
    good = repo.head()
    bump(repo, "staging", {"svc4": ref("bad")}, repo.head(), POLICY)
    path = values_path(repo.workdir, "svc4", "staging")
    path.write_text(path.read_text().replace('tag: "bad"', 'tag: "hotfix"'))
    git(repo.workdir, "commit", "-qam", "deploy(staging): hotfix by hand", "--trailer", "x: y")
    git(repo.workdir, "push", "-q", "origin", "HEAD:main")
    start = repo.head()

    with pytest.raises(ConflictError, match=r"charts/svc4/values-staging\.yaml"):
        rollback(repo, "staging", good, POLICY)

    assert repo.head() == start
    assert repo.is_clean()
    assert repo.in_progress_operation() is None
    assert git(repo.workdir, "ls-remote", "origin", "refs/heads/main").split()[0] == start


def test_promote_of_every_service_leaves_platform_charts_alone(
    clone: Callable[[str], Git],
) -> None:
    repo = clone("a")
    platform = repo.workdir / "charts" / "postgres"
    platform.mkdir()
    for env in ("staging", "production"):
        (platform / f"values-{env}.yaml").write_text("persistence:\n  size: 1Gi\n")
    git(repo.workdir, "add", ".")
    git(repo.workdir, "commit", "-qm", "chore: platform chart without an image")
    bump(repo, "staging", {"svc1": ref("s1")}, repo.head(), POLICY)

    result = promote(repo, "staging", "production", None, POLICY)

    assert result.commit is not None
    assert read_image(values_path(repo.workdir, "svc1", "production")) == ref("s1")
    assert (platform / "values-production.yaml").read_text() == "persistence:\n  size: 1Gi\n"
