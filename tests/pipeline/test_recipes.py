"""Stage recipes: build context, commands and environment per service kind."""

from __future__ import annotations

import tomllib
from pathlib import Path

import msgspec
import pytest
from ci.core.affected import affected
from ci.core.catalog import Catalog, Service, load_catalog
from ci.core.recipes import (
    RepoLayout,
    build_context,
    doc_links_step,
    docker_build_step,
    env_for_tests,
    hadolint_step,
    image_ref,
    lint_steps,
    mypy_path,
    oci_labels,
    registry_host,
    repo_lint_steps,
    repo_test_paths,
    repo_test_steps,
    ruff_steps,
    runs_repo_tests,
    step_for_repo_tests,
    step_for_tests,
    trivy_steps,
)
from ci.core.report import StageResult, failed, summary


def service(**fields: object) -> Service:
    base: dict[str, object] = {
        "name": "auth",
        "kind": "python",
        "description": "Users",
        "port": 8000,
        "health": "/health",
        "ready": "/ready",
        "route": "/api/auth",
        "run": ["uvicorn", "auth.main:app"],
    }
    return msgspec.convert(base | fields, Service)


def test_build_context_is_the_service_its_libraries_and_root_files() -> None:
    assert build_context(service(uses=["servicekit"])) == [
        "services/auth/",
        "services/servicekit/",
        "pyproject.toml",
        "uv.lock",
    ]
    assert build_context(service(name="frontend", kind="node")) == [
        "services/frontend/",
        "pyproject.toml",
        "uv.lock",
    ]


def test_test_env_follows_needs() -> None:
    assert env_for_tests(service(needs=["postgres", "redis"])) == {
        "TEST_DATABASE_URL": "postgresql://postgres@postgres:5432/postgres",
        "TEST_REDIS_URL": "redis://redis:6379/0",
    }
    assert env_for_tests(service(needs=["redis"])) == {"TEST_REDIS_URL": "redis://redis:6379/0"}
    assert env_for_tests(service()) == {}


def test_python_and_node_toolchains() -> None:
    python = service(uses=["servicekit"])
    assert [s.args[0] for s in lint_steps(python)] == ["ruff", "ruff", "mypy"]
    assert step_for_tests(python).args == ["pytest", "services/auth", "--junitxml=/out/junit.xml"]
    assert mypy_path(python) == "services/auth/src:services/servicekit/src:ci/src:tests"
    node = service(name="frontend", kind="node")
    assert [s.args for s in lint_steps(node)] == [
        ["npm", "run", "--silent", "lint"],
        ["npm", "run", "--silent", "typecheck"],
    ]
    assert {s.workdir for s in lint_steps(node)} == {"services/frontend"}
    assert "--outputFile.junit=/out/junit.xml" in step_for_tests(node).args
    assert step_for_tests(node).workdir == "services/frontend"
    assert step_for_tests(python, "/tmp/x.xml").args[-1] == "--junitxml=/tmp/x.xml"
    mypy = lint_steps(python)[-1]
    assert mypy.env == {"MYPYPATH": "services/auth/src:services/servicekit/src:ci/src:tests"}


def test_repo_suite_is_tests_and_every_library() -> None:
    catalog = Catalog(services=(service(),), libraries=frozenset({"servicekit", "aaa-lib"}))

    assert repo_test_paths(catalog) == ["tests", "services/aaa-lib", "services/servicekit"]
    step = step_for_repo_tests(catalog)
    assert step.args == [
        "pytest",
        "tests",
        "services/aaa-lib",
        "services/servicekit",
        "--junitxml=/out/junit.xml",
    ]


def test_repo_suite_runs_on_any_change_or_when_everything_is_asked() -> None:
    catalog = Catalog(services=(service(),), libraries=frozenset({"servicekit"}))

    assert runs_repo_tests(affected(catalog, ["README.md"]))
    assert runs_repo_tests(affected(catalog, [], everything=True))
    assert not runs_repo_tests(affected(catalog, []))


def test_labels_and_image_references() -> None:
    labels = oci_labels(service(), "1.2.3", "f" * 40, "https://github.com/acme/chat")
    assert labels["org.opencontainers.image.version"] == "1.2.3"
    assert labels["org.opencontainers.image.source"] == "https://github.com/acme/chat"
    assert "org.opencontainers.image.source" not in oci_labels(service(), "1", "r", "")
    assert registry_host("ghcr.io/acme/") == "ghcr.io"
    assert image_ref("ghcr.io/acme/", "auth", "main-abc1234") == "ghcr.io/acme/auth:main-abc1234"
    with pytest.raises(ValueError, match="expected host"):
        image_ref(" / ", "auth", "x")


def test_check_summary_has_a_row_per_service_and_stage_with_duration_and_verdict() -> None:
    results = [
        StageResult(service="backend", stage="test", ok=False, detail="2 failed\n", seconds=75),
        StageResult(service="auth", stage="lint", ok=True, seconds=3.25),
        StageResult(service="backend", stage="lint", ok=True),
        StageResult(service="auth", stage="scan", ok=False, detail="CVE-1 HIGH"),
        StageResult(service="auth", stage="build", ok=True, not_run="no Docker daemon"),
    ]

    text = summary(results)

    lines = text.splitlines()
    assert lines[0].split() == ["service", "stage", "duration", "verdict"]
    assert lines[1].split() == ["auth", "lint", "3.2s", "ok"]
    assert lines[2].split() == ["auth", "build", "-", "not", "run:", "no", "Docker", "daemon"]
    assert lines[3].split() == ["auth", "scan", "-", "FAILED"]
    assert lines[4].split() == ["backend", "lint", "-", "ok"]
    assert lines[5].split() == ["backend", "test", "1m15s", "FAILED"]
    assert "2 service(s), 5 stage(s): 2 failed, 1 not run" in text
    assert "--- auth scan:\nCVE-1 HIGH" in text
    assert "--- backend test:\n2 failed" in text
    assert [r.stage for r in failed(results)] == ["test", "scan"]
    assert summary([]) == "check: no services selected"


def test_the_summary_counts_the_repository_suite_apart_from_the_services() -> None:
    results = [
        StageResult(service="auth", stage="test", ok=True),
        StageResult(service="backend", stage="test", ok=True),
        StageResult(service="test-repo", stage="test", ok=True),
    ]

    text = summary(results)

    assert "2 service(s) and the repository suite, 3 stage(s): 0 failed, 0 not run" in text
    assert "2 service(s), 2 stage(s)" in summary(results[:2])


def test_a_stage_that_did_not_run_cannot_have_failed() -> None:
    with pytest.raises(ValueError, match="cannot have failed"):
        StageResult(service="auth", stage="build", ok=False, not_run="no Docker daemon")


LAYOUT = RepoLayout(
    source_roots=["services/auth/src", "ci/src"],
    test_dirs=["services/auth/tests", "tests"],
    dockerfiles=["services/auth/Dockerfile"],
    shell_scripts=["k3s/install.sh", ".ci/run"],
    yaml_dirs=["charts", "k3s"],
    node_folders=["services/frontend"],
)


def test_make_lint_is_the_service_linters_over_the_whole_tree_plus_the_file_linters() -> None:
    steps = repo_lint_steps(LAYOUT)

    assert steps[:2] == ruff_steps(["."])
    mypy = steps[2]
    assert mypy.args == ["mypy", "services/auth/src", "ci/src", "services/auth/tests", "tests"]
    assert mypy.env == {"MYPYPATH": "services/auth/src:ci/src:tests"}
    assert [s.args[0] for s in steps[3:7]] == ["hadolint", "shellcheck", "yamllint", "actionlint"]
    assert steps[4].args[-2:] == ["k3s/install.sh", ".ci/run"]
    assert steps[7] == doc_links_step()
    assert steps[-2:] == lint_steps(service(name="frontend", kind="node"))


def test_make_test_builds_the_front_end_before_one_pytest_session() -> None:
    steps = repo_test_steps(LAYOUT)

    assert [(s.name, s.workdir) for s in steps] == [
        ("vitest", "services/frontend"),
        ("vite build", "services/frontend"),
        ("pytest", "."),
    ]
    assert steps[-1].args == ["pytest"]


def test_build_and_scan_commands_match_the_engine_build() -> None:
    auth = service(uses=["servicekit"])

    step = docker_build_step(auth, "/ctx", "ci-check/auth:1.2.3", "1.2.3", "f" * 40, "")

    assert step.args[:6] == [
        "docker",
        "build",
        "--file",
        "/ctx/services/auth/Dockerfile",
        "--tag",
        "ci-check/auth:1.2.3",
    ]
    assert step.args[-1] == "/ctx"
    assert step.args[step.args.index("VERSION=1.2.3") - 1] == "--build-arg"
    assert "org.opencontainers.image.revision=" + "f" * 40 in step.args
    assert hadolint_step("/Dockerfile", "json").args == [
        "hadolint",
        "--no-fail",
        "-f",
        "json",
        "/Dockerfile",
    ]
    trivy = trivy_steps("/image.tar", "/reports")
    assert trivy[0].args[:4] == ["trivy", "image", "--input", "/image.tar"]
    assert "/reports/trivy.json" in trivy[0].args
    assert [s.args[3] for s in trivy[1:]] == ["sarif", "cyclonedx"]


def test_the_engine_stages_cover_every_test_folder_make_test_runs() -> None:
    """pytest's testpaths (what `make test` collects) are all run by some engine stage: the
    repository suite or a service's own suite."""
    root = Path(__file__).resolve().parents[2]
    catalog = load_catalog(root)
    testpaths = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["pytest"]
    covered = {*repo_test_paths(catalog), *(s.folder for s in catalog.services)}

    folders = {
        str(test_file.relative_to(root)).split("/tests/")[0]
        for path in testpaths["ini_options"]["testpaths"]
        for test_file in (root / path).glob("*/tests/**/test_*.py")
        if "node_modules" not in test_file.parts
    }

    def runs(folder: str) -> bool:
        return any(folder == path or folder.startswith(f"{path}/") for path in covered)

    assert "tests" in covered
    assert {"services/auth", "services/servicekit"} <= folders
    assert [folder for folder in sorted(folders) if not runs(folder)] == []
