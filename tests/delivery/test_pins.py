"""Production reads its charts at a pinned commit that promotion moves (argocd/environments):
`python -m ci.deliver promote` and rollback on real git, a bare remote and a clone."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from ci.core.gitops import ImageRef, bump, rollback
from ci.core.gitrepo import Git
from ci.core.pins import parent_revisions, pin_path, pin_revision, pinned_revision
from ci.deliver import main
from delivery.helpers import commit_file, git

PIN_FILE = "argocd/environments/values-{env}.yaml"
PARENT = """# production's parent: reads the environment chart at the pin
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {{name: production}}
spec:
  source:
    targetRevision: {revision}
    path: argocd/environments
    helm:
      valueFiles: [values.yaml, values-production.yaml]
      parameters:
        - name: revision
          value: {revision}
"""
NEW = ImageRef(tag="main-2", digest="sha256:" + "2" * 64)


def pinned_repo(clone: Callable[[str], Git]) -> tuple[Git, str]:
    """A clone whose staging follows main and whose production is pinned at the first commit."""
    repo = clone("pins")
    first = repo.head()
    commit_file(
        repo.workdir,
        PIN_FILE.format(env="staging"),
        "# staging follows main\nenvironment: staging\nrevision: main\n",
        "chore: staging follows main",
    )
    commit_file(
        repo.workdir,
        PIN_FILE.format(env="production"),
        f"# production: moved by promotion\nenvironment: production\nrevision: {first}\n",
        "chore: pin production",
    )
    commit_file(
        repo.workdir,
        "argocd/apps/production.yaml",
        PARENT.format(revision=first),
        "chore: production's parent",
    )
    git(repo.workdir, "push", "-q", "origin", "HEAD:main")
    return repo, first


def promote(repo: Git, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    # The repository's images live in no registry: signatures are tests/delivery/test_cli.py's.
    argv = ["promote", "--repo", str(repo.workdir), "--from", "staging", "--to", "production"]
    code = main([*argv, "--allow-unsigned"])
    out = capsys.readouterr().out
    assert code == 0, out
    result: dict[str, object] = json.loads(out)
    return result


def test_promote_moves_production_to_the_commit_with_the_promoted_digests(
    clone: Callable[[str], Git], capsys: pytest.CaptureFixture[str]
) -> None:
    repo, _ = pinned_repo(clone)
    bump(repo, "staging", {"svc0": NEW}, repo.head())
    out = promote(repo, capsys)

    promoted = str(out["commit"])
    assert out["revision"] == promoted
    assert pinned_revision(repo.workdir, "production") == promoted
    # The pinned commit holds the new digest for production, and the pin is its own commit on it.
    shown = git(repo.workdir, "show", f"{promoted}:charts/svc0/values-production.yaml")
    assert NEW.digest in shown
    assert git(repo.workdir, "rev-parse", f"{out['pin_commit']}^") == promoted
    message = git(repo.workdir, "log", "-1", "--format=%B", str(out["pin_commit"]))
    assert "[skip ci]" in message
    assert "Deploy-Environment: production" in message
    assert pin_path(repo.workdir, "production").read_text().startswith("# production")
    assert_parent_agrees(repo, promoted)
    changed = git(repo.workdir, "show", "--name-only", "--format=", str(out["pin_commit"]))
    assert sorted(changed.split()) == [
        "argocd/apps/production.yaml",
        PIN_FILE.format(env="production"),
    ]


def assert_parent_agrees(repo: Git, revision: str) -> None:
    """The parent reads the environment chart where its values pin the charts."""
    assert pinned_revision(repo.workdir, "production") == revision
    assert parent_revisions(repo.workdir, "production") == (revision, revision)


def test_a_template_change_alone_moves_the_parent(
    clone: Callable[[str], Git], capsys: pytest.CaptureFixture[str]
) -> None:
    repo, _ = pinned_repo(clone)
    commit_file(repo.workdir, "argocd/environments/templates/app.yaml", "{}\n", "feat: template")
    git(repo.workdir, "push", "-q", "origin", "HEAD:main")
    tip = repo.head()
    assert promote(repo, capsys)["revision"] == tip
    assert_parent_agrees(repo, tip)


def test_chart_changes_alone_are_promoted_too(
    clone: Callable[[str], Git], capsys: pytest.CaptureFixture[str]
) -> None:
    repo, _ = pinned_repo(clone)
    commit_file(repo.workdir, "charts/svc0/templates/new.yaml", "kind: ConfigMap\n", "feat: chart")
    git(repo.workdir, "push", "-q", "origin", "HEAD:main")
    tip = repo.head()
    out = promote(repo, capsys)
    assert out["commit"] is None  # same digests
    assert out["revision"] == tip
    assert_parent_agrees(repo, tip)
    assert promote(repo, capsys).get("pin_commit") is None  # already there


def test_rollback_of_production_restores_charts_and_digests(
    clone: Callable[[str], Git], capsys: pytest.CaptureFixture[str]
) -> None:
    repo, first = pinned_repo(clone)
    before = repo.head()
    bump(repo, "staging", {"svc0": NEW}, repo.head())
    promote(repo, capsys)
    rollback(repo, "production", before)
    assert_parent_agrees(repo, first)


def test_a_branch_follower_is_never_pinned(clone: Callable[[str], Git]) -> None:
    repo, _ = pinned_repo(clone)
    assert pinned_revision(repo.workdir, "staging") is None
    assert pin_revision(repo, "staging", repo.head()).commit is None
    assert pinned_revision(repo.workdir, "preview") is None  # no file at all


def test_a_pin_outside_the_history_is_refused(clone: Callable[[str], Git]) -> None:
    repo, _ = pinned_repo(clone)
    with pytest.raises(ValueError, match="full commit sha"):
        pin_revision(repo, "production", "main")
    with pytest.raises(ValueError, match="history"):
        pin_revision(repo, "production", "f" * 40)
    assert git(repo.workdir, "status", "--porcelain") == ""
