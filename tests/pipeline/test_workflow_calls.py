"""The workflows call the module as it registers with the real SDK: `dagger check` on pull
requests, every `dagger call FUNCTION --flag` naming a function and arguments that exist, the
GitOps first install on changes to what it installs and nightly, the optional Cloud token."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
SIGNATURES = """
import json, ci
functions = ci.Ci.__dagger_module__.get_object("Ci").functions
print(json.dumps({n: [p.name for p in f.parameters.values()] for n, f in functions.items()}))
"""
# Constructor arguments and the CLI's own flags, valid before or after any function.
GLOBAL_FLAGS = {"source", "path", "m", "mod"}


def load(name: str) -> dict[Any, Any]:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    assert isinstance(data, dict)
    return data


def run_lines() -> list[tuple[str, str]]:
    """(workflow, command) for every `dagger ...` command of every run step."""
    found = []
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for job in load(path.name)["jobs"].values():
            for step in job["steps"]:
                script = step.get("run", "").replace("\\\n", " ")
                found += [(path.name, line.strip()) for line in script.splitlines()]
    return [(name, line) for name, line in found if line.startswith("dagger ")]


def signatures() -> dict[str, list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", SIGNATURES],
        env={**os.environ, "PYTHONPATH": str(ROOT / "ci" / "src"), "DAGGER_MAIN_OBJECT": "Ci"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    parsed: dict[str, list[str]] = json.loads(done.stdout)
    return parsed


def test_every_dagger_call_names_a_function_and_arguments_of_the_module() -> None:
    functions = signatures()
    # `dagger call -m ci/tests ...` calls the engine test module, not this one.
    calls = [(n, line) for n, line in run_lines() if line.startswith("dagger call ")]
    calls = [(n, line) for n, line in calls if " -m " not in line]
    assert calls
    for workflow, line in calls:
        words = shlex.split(re.sub(r'"\$\{?[^"]*"', "X", line))
        name = words[2].replace("-", "_")
        assert name in functions, f"{workflow}: {line}"
        flags = {w[2:].split("=", 1)[0].replace("-", "_") for w in words if w.startswith("--")}
        unknown = flags - set(functions[name]) - GLOBAL_FLAGS
        if "export" in words:  # `... export --path DIR` applies to the returned Directory
            unknown -= {"path"}
        assert not unknown, f"{workflow}: {name} has no argument {unknown}"


def test_every_deploy_promote_and_release_verifies_signatures_and_deploy_signs() -> None:
    pinning = r"dagger call (deploy|promote|release) "
    calls = [line for _, line in run_lines() if re.match(pinning, line)]
    assert {line.split()[2] for line in calls} == {"deploy", "promote", "release"}
    for line in calls:
        assert "--public-key " in line, line
        assert "--allow-unsigned" not in line, line
        assert "password env://" in line, line  # the signatures are read with a login
        if line.split()[2] == "deploy":
            assert "--cosign-key env://" in line, line


def test_pull_requests_run_every_check_of_the_module() -> None:
    assert ("pull-request.yml", "dagger check") in run_lines()


def test_the_gitops_install_runs_on_what_it_installs_and_nightly() -> None:
    gitops = load("gitops.yml")
    triggers = gitops[True]  # YAML 1.1 reads the key `on` as True
    assert set(triggers["push"]["paths"]) == {"charts/**", "argocd/**", "k3s/**"}
    assert triggers["schedule"][0]["cron"]
    assert any(
        w == "gitops.yml" and line.startswith("dagger call integration --gitops")
        for w, line in run_lines()
    )


def test_the_cloud_token_is_optional_and_never_given_to_fork_code() -> None:
    main = (WORKFLOWS / "main.yml").read_text()
    assert "cloud-token: ${{ secrets.DAGGER_CLOUD_TOKEN }}" in main
    assert "cloud-token" not in (WORKFLOWS / "pull-request.yml").read_text()
