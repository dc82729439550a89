"""The affected-service plan, from real git history of temporary repositories."""

from __future__ import annotations

from pathlib import Path

import pytest
from ci.core.affected import TOOLING_PATHS, Reason, affected, decision_keys
from ci.core.catalog import load_catalog
from ci.core.gitfacts import GitError, changed_files, resolve_all
from ci.plan import make_plan
from pipeline.repos import Repo


def plan_after(repo: Repo, files: dict[str, str]) -> dict[str, list[Reason]]:
    repo.commit(files)
    plan = make_plan(repo.root, "HEAD~1")
    return {s.name: s.reasons for s in plan.services}


def test_change_in_one_service_affects_only_that_service(repo: Repo) -> None:
    result = plan_after(repo, {"services/auth/src/auth/main.py": "app = 1\n"})

    assert result == {"auth": [Reason(cause="service", path="services/auth")]}


def test_change_in_the_shared_library_affects_its_users_only(repo: Repo) -> None:
    result = plan_after(repo, {"services/servicekit/src/servicekit/jwt.py": "KEY = 1\n"})

    library = [Reason(cause="library", path="services/servicekit")]
    assert result == {"auth": library, "backend": library}


def test_change_in_a_service_chart_affects_that_service(repo: Repo) -> None:
    result = plan_after(repo, {"charts/backend/values.yaml": "replicas: 2\n"})

    assert result == {"backend": [Reason(cause="chart", path="charts/backend")]}


def test_change_in_the_library_chart_affects_every_service(repo: Repo) -> None:
    result = plan_after(repo, {"charts/common/templates/_deployment.tpl": "{{/* */}}\n"})

    assert sorted(result) == ["auth", "backend", "frontend"]
    assert all(r == [Reason(cause="library-chart", path="charts/common")] for r in result.values())


def test_change_in_ci_affects_every_service(repo: Repo) -> None:
    result = plan_after(repo, {"ci/src/ci/main.py": "# changed\n"})

    assert sorted(result) == ["auth", "backend", "frontend"]
    assert result["frontend"] == [Reason(cause="tooling", path="ci")]


@pytest.mark.parametrize("path", ["pyproject.toml", "uv.lock", "Makefile", "dagger.json"])
def test_change_in_root_tooling_affects_every_service(repo: Repo, path: str) -> None:
    result = plan_after(repo, {path: "# changed\n"})

    assert sorted(result) == ["auth", "backend", "frontend"]
    assert result["auth"] == [Reason(cause="tooling", path=path)]


def test_changes_outside_services_and_tooling_affect_nothing(repo: Repo) -> None:
    repo.commit({"README.md": "# new\n", "argocd/root.yaml": "kind: X\n", "charts/postgres/x": ""})
    plan = make_plan(repo.root, "HEAD~1")

    assert plan.services == []
    assert plan.unaffected == ["auth", "backend", "frontend"]
    assert plan.changed_files == ["README.md", "argocd/root.yaml", "charts/postgres/x"]


def test_reasons_accumulate_without_duplicates(repo: Repo) -> None:
    result = plan_after(
        repo,
        {
            "services/auth/a.py": "",
            "services/auth/b.py": "",
            "services/servicekit/c.py": "",
            "charts/auth/values.yaml": "",
        },
    )

    assert result["auth"] == [
        Reason(cause="chart", path="charts/auth"),
        Reason(cause="service", path="services/auth"),
        Reason(cause="library", path="services/servicekit"),
    ]
    assert result["backend"] == [Reason(cause="library", path="services/servicekit")]


def test_only_changes_since_the_fork_point_count(repo: Repo) -> None:
    repo.git("checkout", "-q", "-b", "feature")
    repo.commit({"services/frontend/src/app.tsx": "x\n"})
    repo.git("checkout", "-q", "main")
    repo.commit({"services/auth/src/auth/main.py": "moved on\n"})
    repo.git("checkout", "-q", "feature")

    plan = make_plan(repo.root, "main")

    assert plan.names() == ["frontend"]
    assert plan.base == repo.git("rev-parse", "main")
    assert plan.head == repo.git("rev-parse", "feature")


def test_all_selects_every_service_with_its_reason(repo: Repo) -> None:
    repo.commit({"services/auth/x.py": ""})
    plan = make_plan(repo.root, "HEAD~1", everything=True)

    assert plan.names() == ["auth", "backend", "frontend"]
    assert plan.services[0].reasons == [
        Reason(cause="requested", path="--all"),
        Reason(cause="service", path="services/auth"),
    ]
    assert plan.services[2].reasons == [Reason(cause="requested", path="--all")]


def test_a_deleted_file_counts_as_a_change(repo: Repo) -> None:
    repo.git("rm", "-q", "services/backend/src/backend/main.py")
    repo.git("commit", "-q", "-m", "delete")

    assert changed_files(repo.root, "HEAD~1") == ["services/backend/src/backend/main.py"]
    assert make_plan(repo.root, "HEAD~1").names() == ["backend"]


def test_unknown_base_ref_is_a_git_error_naming_the_ref(repo: Repo) -> None:
    with pytest.raises(GitError, match="unknown git ref 'origin/nope'"):
        changed_files(repo.root, "origin/nope")


def test_git_in_a_missing_directory_is_a_git_error(tmp_path: Path) -> None:
    with pytest.raises(GitError, match="cannot run in"):
        changed_files(tmp_path / "nowhere", "HEAD~1")


def test_pure_rules_without_git(repo: Repo) -> None:
    catalog = load_catalog(repo.root)
    every = affected(catalog, [f"{p}x" if p.endswith("/") else p for p in TOOLING_PATHS])

    assert every.names() == ["auth", "backend", "frontend"]
    assert affected(catalog, ["services/README.md", "charts/index.yaml"]).names() == []
    assert affected(catalog, ["services/gone/x.py"]).names() == []


def test_deciding_once_per_folder_gives_the_per_path_answer(repo: Repo) -> None:
    """affected() decides once per folder; the result equals every path decided on its own."""
    catalog = load_catalog(repo.root)
    paths = [
        "ci/src/ci/main.py",
        "ci/README.md",
        "tests/harness/servers.py",
        "tests/harness.py",
        "tests/harnessx/a.py",
        "services/auth/src/a.py",
        "services/auth/Dockerfile",
        "services/servicekit/src/x.py",
        "services/README.md",
        "charts/backend/templates/x.yaml",
        "charts/backend/values.yaml",
        "charts/postgres/values.yaml",
        "Makefile",
        "docs/a/b.md",
    ]
    one_by_one: dict[str, list[Reason]] = {}
    for path in paths:
        for name, reasons in ((s.name, s.reasons) for s in affected(catalog, [path]).services):
            one_by_one.setdefault(name, []).extend(
                r for r in reasons if r not in one_by_one.get(name, [])
            )

    together = {s.name: s.reasons for s in affected(catalog, paths).services}

    assert {n: sorted(r, key=str) for n, r in together.items()} == {
        n: sorted(r, key=str) for n, r in one_by_one.items()
    }
    assert set(together) == set(catalog.names())  # the tooling paths reached every service


def test_paths_with_non_ascii_quote_and_tab_characters_come_back_as_they_are(repo: Repo) -> None:
    """Without `git diff -z` git C-quotes such paths ("services/auth/\\303\\251.py"): the
    quoted form names no folder, so the change would affect nothing."""
    odd = ["services/auth/é.py", 'services/backend/a "quoted" name.py', "charts/auth/tab\tx.yaml"]
    repo.commit(dict.fromkeys(odd, "x\n"))

    assert changed_files(repo.root, "HEAD~1") == sorted(odd)
    plan = make_plan(repo.root, "HEAD~1")
    assert plan.names() == ["auth", "backend"]
    assert plan.changed_files == sorted(odd)


def test_both_refs_resolve_in_one_call_and_a_bad_one_is_named(repo: Repo) -> None:
    repo.commit({"services/auth/x.py": ""})

    shas = resolve_all(repo.root, "HEAD~1", "HEAD")

    assert shas == [repo.git("rev-parse", "HEAD~1"), repo.git("rev-parse", "HEAD")]
    with pytest.raises(GitError, match="unknown git ref 'nope'"):
        resolve_all(repo.root, "HEAD", "nope")
    with pytest.raises(GitError, match="invalid git ref '--all'"):
        resolve_all(repo.root, "HEAD", "--all")


def test_decision_keys_one_per_folder_and_one_per_short_path() -> None:
    """Neighbours that sort around "/" ("-" and "." before it, "0" after) stay distinct, and a
    file replaced by a folder of the same name ("services/auth" -> "services/auth/a") is two
    decisions, not one."""
    paths = sorted(
        [
            "Makefile",
            "services/auth",
            "services/auth-x/y.py",
            "services/auth.d/z.py",
            "services/auth/a.py",
            "services/auth/b/c.py",
            "services/auth0/q.py",
            "services/README.md",
            "tests/harness/servers.py",
        ]
    )

    assert list(decision_keys(paths)) == [
        "Makefile",
        "services/README.md",
        "services/auth",
        "services/auth-x/",
        "services/auth.d/",
        "services/auth/",
        "services/auth0/",
        "tests/harness/",
    ]
    assert list(decision_keys([])) == []


def test_a_file_replaced_by_a_folder_of_a_service_name_affects_that_service(repo: Repo) -> None:
    catalog = load_catalog(repo.root)

    plan = affected(catalog, ["services/auth", "services/auth/src/main.py"])

    assert plan.names() == ["auth"]
    assert plan.services[0].reasons == [Reason(cause="service", path="services/auth")]


def test_duplicated_and_unsorted_input_paths_are_listed_once_in_order(repo: Repo) -> None:
    catalog = load_catalog(repo.root)

    plan = affected(catalog, ["services/auth/b.py", "README.md", "services/auth/b.py", "ci/x"])

    assert plan.changed_files == ["README.md", "ci/x", "services/auth/b.py"]
    assert plan.services[0].reasons == [
        Reason(cause="tooling", path="ci"),
        Reason(cause="service", path="services/auth"),
    ]
