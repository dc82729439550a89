"""`python -m ci.plan` as a process: JSON on stdout, exit 2 with a clear message on bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pipeline.repos import AUTH, Repo

REPO_ROOT = Path(__file__).resolve().parents[2]
CI_SRC = REPO_ROOT / "ci" / "src"


def run_plan(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(CI_SRC)}
    return subprocess.run(
        [sys.executable, "-m", "ci.plan", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_prints_the_plan_as_json(repo: Repo) -> None:
    repo.commit({"services/servicekit/src/servicekit/log.py": ""})

    done = run_plan(repo.root, "--base", "HEAD~1")

    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert list(plan) == ["base", "head", "changed_files", "services", "unaffected"]
    assert done.stdout.startswith('{\n  "base": "')  # indented by two spaces
    assert [s["name"] for s in plan["services"]] == ["auth", "backend"]
    assert plan["services"][0]["reasons"] == [{"cause": "library", "path": "services/servicekit"}]
    assert plan["unaffected"] == ["frontend"]


def test_runs_from_ci_src_against_another_checkout(repo: Repo) -> None:
    repo.commit({"services/frontend/src/main.tsx": ""})

    done = run_plan(CI_SRC, "--base", "HEAD~1", "--repo", str(repo.root))

    assert done.returncode == 0, done.stderr
    assert [s["name"] for s in json.loads(done.stdout)["services"]] == ["frontend"]


def test_bad_ref_exits_2_with_a_message(repo: Repo) -> None:
    done = run_plan(repo.root, "--base", "no-such-branch")

    assert done.returncode == 2
    assert done.stdout == ""
    assert "unknown git ref 'no-such-branch'" in done.stderr


def test_broken_service_yaml_exits_2_naming_file_and_field(repo: Repo) -> None:
    repo.commit({"services/auth/service.yaml": AUTH.replace("port: 8000", "port: -1")})

    done = run_plan(repo.root, "--base", "HEAD~1")

    assert done.returncode == 2
    assert "services/auth/service.yaml: field 'port'" in done.stderr


def test_missing_base_is_a_usage_error(repo: Repo) -> None:
    done = run_plan(repo.root)

    assert done.returncode == 2
    assert "--base" in done.stderr


def test_all_needs_no_base(repo: Repo) -> None:
    done = run_plan(repo.root, "--all")

    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert [s["name"] for s in plan["services"]] == ["auth", "backend", "frontend"]
    assert (plan["base"], plan["changed_files"]) == (None, [])


def test_outside_a_git_checkout_exits_2(tmp_path: Path) -> None:
    done = run_plan(tmp_path, "--base", "HEAD~1")

    assert done.returncode == 2
    assert "ci.plan: git rev-parse --show-toplevel failed" in done.stderr


def test_this_repository_history_gives_valid_json() -> None:
    """The acceptance command, on this repository's own history, run from ci/src."""
    done = run_plan(CI_SRC, "--base", "HEAD~1")

    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert set(plan) == {"base", "head", "changed_files", "services", "unaffected"}
    assert len(plan["head"]) == 40
    assert all(isinstance(path, str) for path in plan["changed_files"])


def test_missing_repository_directory_exits_2(tmp_path: Path) -> None:
    done = run_plan(CI_SRC, "--base", "HEAD~1", "--repo", str(tmp_path / "nowhere"))

    assert done.returncode == 2
    assert f"folder not found under {tmp_path / 'nowhere'}" in done.stderr
    assert "Traceback" not in done.stderr
