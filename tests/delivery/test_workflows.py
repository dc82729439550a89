"""The GitHub workflows: pinned actions, least privilege, no racing deploys, fork safety,
the Dagger CLI pinned to the module's engine, and actionlint clean."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
BIN = ROOT / ".venv" / "bin"
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
WRITE_SCOPES = {"contents", "packages", "pull-requests"}


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = YAML(typ="safe", pure=True).load(path.read_text())
    return data


def workflow(name: str) -> dict[str, Any]:
    return load(ROOT / ".github" / "workflows" / name)


def steps(path: Path) -> list[dict[str, Any]]:
    return [step for job in load(path)["jobs"].values() for step in job.get("steps", [])]


def test_the_gitops_run_keeps_its_reports_and_diagnostics_whatever_happened() -> None:
    found = steps(ROOT / ".github" / "workflows" / "gitops.yml")
    run = next(i for i, s in enumerate(found) if "integration --gitops" in s.get("run", ""))
    exported = found[run]["run"].split("export --path ")[1].split()[0]
    uploads = [s for s in found[run:] if s.get("uses", "").startswith("actions/upload-artifact@")]

    assert len(uploads) == 1
    assert uploads[0]["if"] == "always()"  # a failed run is the one whose diagnostics matter
    assert uploads[0]["with"]["path"] == exported


def engine_version() -> str:
    version: str = json.loads((ROOT / "dagger.json").read_text())["engineVersion"]
    return version.removeprefix("v")


def test_the_expected_workflows_exist() -> None:
    assert {p.name for p in WORKFLOWS} >= {
        "pull-request.yml",
        "main.yml",
        "previews.yml",
        "release.yml",
        "preview-gc.yml",
    }


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_by_commit_sha_with_a_version_comment(path: Path) -> None:
    text = path.read_text()
    for step in steps(path):
        if "uses" in step:
            assert PINNED.fullmatch(step["uses"]), f"{path.name}: {step['uses']} is not pinned"
            assert re.search(re.escape(step["uses"]) + r" # v\d", text), "missing version comment"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_permissions_are_least_privilege(path: Path) -> None:
    data = load(path)
    # Workflow default: read only. Writes are granted per job, and only the scopes we use.
    assert data["permissions"] == {"contents": "read"}
    for name, job in data["jobs"].items():
        granted = job.get("permissions", {})
        assert isinstance(granted, dict), f"{path.name}:{name}: use a scope map, not {granted!r}"
        assert set(granted) <= WRITE_SCOPES, f"{path.name}:{name}: {granted}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_dagger_cli_matches_the_module_engine_version(path: Path) -> None:
    dagger_steps = [s for s in steps(path) if s.get("uses", "").startswith("dagger/")]
    assert dagger_steps, f"{path.name} does not call dagger"
    for step in dagger_steps:
        assert step["with"]["version"] == engine_version() == "0.21.11"
        # Only installs the CLI: `args`/`call` would be pasted into the action's bash script.
        assert "args" not in step["with"]
        assert "call" not in step["with"]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_no_expression_is_pasted_into_a_script(path: Path) -> None:
    for step in steps(path):
        assert "${{" not in step.get("run", ""), f"{path.name}: pass values through env"


def test_deploys_of_one_environment_never_race() -> None:
    groups = {
        name: workflow(name)["concurrency"]
        for name in ("main.yml", "release.yml", "operate.yml", "previews.yml", "preview-gc.yml")
    }
    assert groups["main.yml"] == {"group": "deploy-staging", "cancel-in-progress": False}
    assert groups["release.yml"] == {"group": "deploy-production", "cancel-in-progress": False}
    # promote/rollback join the group of the environment they change.
    assert groups["operate.yml"]["group"] == "deploy-${{ inputs.env }}"
    assert all(group["cancel-in-progress"] is False for group in groups.values())


def test_bump_commits_do_not_retrigger_the_pipeline() -> None:
    main = workflow("main.yml")
    ignored = main["on"]["push"]["paths-ignore"]
    assert {"charts/*/values-*.yaml", "argocd/previews/**", "services/*/CHANGELOG.md"} <= set(
        ignored
    )
    assert "[skip ci]" in main["jobs"]["deploy-staging"]["if"]


def test_fork_pull_requests_get_no_secrets() -> None:
    previews = workflow("previews.yml")
    for name, job in previews["jobs"].items():
        assert "head.repo.full_name == github.repository" in job["if"], name
    assert workflow("previews.yml")["on"]["pull_request"]["types"] == [
        "opened",
        "synchronize",
        "reopened",
        "closed",
    ]
    # The pull_request workflow that forks do run uses no secret at all.
    assert "secrets." not in (ROOT / ".github/workflows/pull-request.yml").read_text()
    # pull_request_target would hand fork code a write token: never used.
    assert all("pull_request_target" not in p.read_text() for p in WORKFLOWS)


def test_release_is_manual_and_gc_is_scheduled() -> None:
    assert set(workflow("release.yml")["on"]) == {"workflow_dispatch"}
    assert workflow("preview-gc.yml")["on"]["schedule"][0]["cron"]


def test_actionlint_passes_and_catches_errors(tmp_path: Path) -> None:
    shellcheck = BIN / "shellcheck"
    args = [str(BIN / "actionlint")]
    if shellcheck.exists() or shutil.which("shellcheck"):
        args += ["-shellcheck", str(shellcheck if shellcheck.exists() else "shellcheck")]
    clean = subprocess.run(
        [*args, *map(str, WORKFLOWS)], capture_output=True, text=True, timeout=120, check=False
    )
    assert clean.returncode == 0, clean.stdout + clean.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n"
        "      - run: echo ${{ secret.TOKEN }}\n"  # undefined context `secret`
    )
    failed = subprocess.run(
        [*args, str(broken)], capture_output=True, text=True, timeout=120, check=False
    )
    assert failed.returncode != 0
    assert "secret" in failed.stdout


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_dagger_calls_get_the_optional_otlp_endpoint(path: Path) -> None:
    """`dagger call` sends its traces where OTEL_EXPORTER_OTLP_ENDPOINT points; a repository
    variable (an address, not a secret), empty and so ignored when unset."""
    assert "dagger call" in path.read_text()
    env = load(path).get("env", {})
    assert env.get("OTEL_EXPORTER_OTLP_ENDPOINT") == "${{ vars.OTEL_EXPORTER_OTLP_ENDPOINT }}"
