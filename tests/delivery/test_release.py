"""Release computation and tagging on real git histories."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from ci.core.catalog import Catalog, load_catalog
from ci.core.gitops import SKIP_CI_MARKER, PushPolicy
from ci.core.gitrepo import Git
from ci.core.release import (
    Level,
    Version,
    changes_since,
    parse_commit,
    plan_releases,
    plan_service,
    tag_releases,
)
from delivery.helpers import commit_file, configure_identity, git, service_yaml

DAY = date(2026, 11, 25)


@pytest.fixture
def repo(tmp_path: Path) -> Git:
    """A clone (with a bare origin) holding auth and backend (both use servicekit) and ai."""
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    work = tmp_path / "work"
    git(tmp_path, "clone", "--quiet", str(bare), str(work))
    configure_identity(work)
    for name, uses in (("auth", ["servicekit"]), ("backend", ["servicekit"]), ("ai", [])):
        (work / "services" / name).mkdir(parents=True)
        (work / "services" / name / "service.yaml").write_text(service_yaml(name, uses))
        (work / "charts" / name).mkdir(parents=True)
        (work / "charts" / name / "values.yaml").write_text("replicas: 1\n")
    (work / "services" / "servicekit").mkdir()
    (work / "services" / "servicekit" / "lib.py").write_text("x = 1\n")
    git(work, "add", ".")
    git(work, "commit", "--quiet", "-m", "chore: scaffold")
    git(work, "push", "--quiet", "origin", "HEAD:main")
    return Git(work)


@pytest.fixture
def catalog(repo: Git) -> Catalog:
    return load_catalog(repo.workdir)


def versions(repo: Git, catalog: Catalog) -> dict[str, str]:
    return {plan.service: str(plan.version) for plan in plan_releases(repo, catalog)}


def tag(repo: Git, name: str) -> None:
    git(repo.workdir, "tag", "-a", name, "-m", name)


def test_parse_commit_reads_type_scope_and_breaking() -> None:
    feat = parse_commit("a" * 40, "feat(api): add search\n\nbody")
    assert feat is not None
    assert (feat.type, feat.scope, feat.breaking, feat.level) == ("feat", "api", False, Level.MINOR)
    bang = parse_commit("b" * 40, "refactor!: drop v1")
    assert bang is not None
    assert bang.level == Level.MAJOR
    footer = parse_commit("c" * 40, "fix: tokens\n\nBREAKING CHANGE: new claim names")
    assert footer is not None
    assert footer.breaking
    assert parse_commit("d" * 40, "Update README") is None
    chore = parse_commit("e" * 40, "chore: tidy")
    assert chore is not None
    assert chore.level == Level.NONE


def test_first_feature_releases_0_1_0_for_that_service_only(repo: Git, catalog: Catalog) -> None:
    commit_file(repo.workdir, "services/auth/app.py", "a = 1\n", "feat(auth): login")
    assert versions(repo, catalog) == {"auth": "0.1.0"}


def test_fix_feat_and_breaking_bump_from_the_last_tag(repo: Git, catalog: Catalog) -> None:
    tag(repo, "auth-v1.2.3")
    tag(repo, "backend-v1.2.3")
    tag(repo, "ai-v1.2.3")
    commit_file(repo.workdir, "services/auth/a.py", "1\n", "fix: expiry off by one")
    commit_file(repo.workdir, "charts/backend/values.yaml", "replicas: 2\n", "feat: scale out")
    commit_file(repo.workdir, "services/ai/a.py", "1\n", "perf: cache\n\nBREAKING CHANGE: new API")
    assert versions(repo, catalog) == {"auth": "1.2.4", "backend": "1.3.0", "ai": "2.0.0"}


def test_breaking_change_before_1_0_bumps_minor(repo: Git, catalog: Catalog) -> None:
    tag(repo, "ai-v0.3.1")
    commit_file(repo.workdir, "services/ai/a.py", "1\n", "feat(ai)!: new reply format")
    plan = plan_service(repo, catalog, "ai")
    assert plan is not None
    assert (plan.previous, plan.version, plan.level) == (Version(0, 3, 1), Version(0, 4, 0), 3)


def test_one_commit_touching_two_services_releases_both(repo: Git, catalog: Catalog) -> None:
    tag(repo, "auth-v1.0.0")
    tag(repo, "backend-v2.0.0")
    (repo.workdir / "services/auth/x.py").write_text("1\n")
    (repo.workdir / "services/backend/x.py").write_text("1\n")
    git(repo.workdir, "add", ".")
    git(repo.workdir, "commit", "-qm", "feat: shared pagination")
    sha = repo.head()
    plans = {plan.service: plan for plan in plan_releases(repo, catalog)}
    assert {name: str(plan.version) for name, plan in plans.items()} == {
        "auth": "1.1.0",
        "backend": "2.1.0",
    }
    assert [c.sha for c in plans["auth"].changes] == [sha]
    assert [c.sha for c in plans["backend"].changes] == [sha]


def test_library_change_releases_its_users(repo: Git, catalog: Catalog) -> None:
    commit_file(repo.workdir, "services/servicekit/lib.py", "x = 2\n", "fix: rate limit header")
    assert versions(repo, catalog) == {"auth": "0.0.1", "backend": "0.0.1"}


def test_no_relevant_commit_means_no_release(repo: Git, catalog: Catalog) -> None:
    tag(repo, "auth-v1.0.0")
    commit_file(repo.workdir, "services/auth/README.md", "x\n", "docs: explain tokens")
    commit_file(repo.workdir, "charts/auth/values-staging.yaml", "x: 1\n", "deploy(staging): auth")
    commit_file(repo.workdir, "README.md", "x\n", "feat: top-level only")
    assert plan_service(repo, catalog, "auth") is None
    assert [c.type for c in changes_since(repo, "auth-v1.0.0", ["services/auth/"])] == ["docs"]


def test_tag_releases_pushes_annotated_tags_and_changelogs(repo: Git, catalog: Catalog) -> None:
    tag(repo, "auth-v1.0.0")
    git(repo.workdir, "push", "-q", "origin", "auth-v1.0.0")
    fix = commit_file(repo.workdir, "services/auth/a.py", "1\n", "fix(auth): refresh race")
    commit_file(repo.workdir, "services/ai/a.py", "1\n", "feat: streaming")
    git(repo.workdir, "push", "-q", "origin", "HEAD:main")

    plans = tag_releases(repo, catalog, DAY, policy=PushPolicy(max_attempts=3))

    assert [(p.service, str(p.version)) for p in plans] == [("ai", "0.1.0"), ("auth", "1.0.1")]
    remote_tags = git(repo.workdir, "ls-remote", "--tags", "origin").splitlines()
    assert any(line.endswith("refs/tags/auth-v1.0.1") for line in remote_tags)
    assert any(line.endswith("refs/tags/ai-v0.1.0") for line in remote_tags)
    assert git(repo.workdir, "cat-file", "-t", "auth-v1.0.1") == "tag"
    assert git(repo.workdir, "rev-list", "-n1", "auth-v1.0.1") == repo.head()
    assert git(repo.workdir, "rev-parse", "origin/main") == repo.head()
    subject = git(repo.workdir, "log", "-1", "--format=%s")
    assert subject == f"chore(release): ai 0.1.0, auth 1.0.1 {SKIP_CI_MARKER}"
    changelog = (repo.workdir / "services/auth/CHANGELOG.md").read_text()
    assert changelog.startswith("# Changelog\n\n## auth 1.0.1 (2026-11-25)\n")
    assert f"### Bug fixes\n\n- **auth:** refresh race ({fix[:7]})" in changelog
    assert "## ai 0.1.0" not in changelog
    # Released: nothing more to do until the next relevant commit.
    assert tag_releases(repo, catalog, DAY) == []
    commit_file(repo.workdir, "services/auth/b.py", "1\n", "feat: sessions")
    git(repo.workdir, "push", "-q", "origin", "HEAD:main")
    assert [str(p.version) for p in tag_releases(repo, catalog, DAY)] == ["1.1.0"]
    changelog = (repo.workdir / "services/auth/CHANGELOG.md").read_text()
    assert changelog.index("## auth 1.1.0") < changelog.index("## auth 1.0.1")
