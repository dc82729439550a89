"""The Dagger module as far as the host can check it, plus the engine tests (skipped here).

Without an engine, registering the module still builds every type definition (functions,
arguments, defaults, DefaultPath/Ignore) with the real SDK; only the final call to the engine
fails. The engine tests run `dagger call -m ci/tests all` where a dagger CLI and engine exist.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from ci.core.catalog import load_catalog

REPO_ROOT = Path(__file__).resolve().parents[2]
CI_SRC = REPO_ROOT / "ci" / "src"
# The pipeline's functions; delivery functions are checked by tests/delivery.
FUNCTIONS = {
    "build",
    "check",
    "integration",
    "lint",
    "plan",
    "publish",
    "scan",
    "services",
    "stack",
    "test",
    "test_repo",
    "version",
}
# The engine test module: one function per pipeline function, a K3s server with an agent
# (`integration --agents 1`), and `all`.
ENGINE_TESTS = FUNCTIONS | {"integration_with_agent", "all"}
ENGINE_TIMEOUT_SECONDS = 3600
# `dagger check` runs these (no required argument), `dagger generate` these, `dagger up` this.
# Per service (from the catalog itself, services/*/service.yaml): lint-, test- and scan-<name>.
CHECK_STAGES = ("lint", "test", "scan")
REPOSITORY_CHECKS = {"test_repository", "generated_up_to_date"}
GENERATORS = {"generated_files"}
UP = {"stack"}

REGISTER = """
import anyio, json, dagger, ci
module = ci.Ci.__dagger_module__
print(json.dumps(sorted(module.get_object("Ci").functions)))
try:
    anyio.run(module._typedefs)
except dagger.ClientConnectionError as exc:
    print("engine call reached:", exc)
"""


def python(code: str, path: Path = CI_SRC, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(path), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_module_registration_builds_every_type_definition_up_to_the_engine_call() -> None:
    done = python(REGISTER, DAGGER_MAIN_OBJECT="Ci")

    assert done.returncode == 0, done.stderr
    names, reached = done.stdout.splitlines()[:2]
    assert set(json.loads(names)) >= FUNCTIONS
    assert reached.startswith("engine call reached:")


def test_engine_test_module_registers_one_function_per_capability_and_all() -> None:
    code = REGISTER.replace("ci.Ci", "ci_tests.CiTests").replace('"Ci"', '"CiTests"')
    code = code.replace("import anyio, json, dagger, ci", "import anyio, json, dagger, ci_tests")

    done = python(code, REPO_ROOT / "ci" / "tests" / "src", DAGGER_MAIN_OBJECT="CiTests")

    assert done.returncode == 0, done.stderr
    names, reached = done.stdout.splitlines()[:2]
    assert set(json.loads(names)) == ENGINE_TESTS
    assert reached.startswith("engine call reached:")


CONVENTIONS = """
import json, ci
module = ci.Ci.__dagger_module__
functions = module.get_object("Ci").functions
print(json.dumps({
    "check": sorted(n for n, f in functions.items() if f.check),
    "generate": sorted(n for n, f in functions.items() if f.generate),
    "up": sorted(n for n, f in functions.items() if f.service),
    "required": {
        n: [p.name for p in f.parameters.values() if p.is_optional is False
            and p.default_value is None and p.default_path is None]
        for n, f in functions.items() if f.check or f.generate or f.service
    },
    "docs": {n: f.doc for n, f in functions.items() if f.check},
    "cache": {n: f.cache_policy for n, f in functions.items() if f.check},
    "enums": {name: [m.name for m in cls] for name, cls in module._enums.items()},
    "types": {n: str(functions[n].parameters[p].resolved_type.__name__)
              for n, p in (("scan", "severity"), ("check", "severity"), ("release", "mode"))},
}))
"""


def catalog_checks() -> set[str]:
    """A check per stage of every service in services/*/service.yaml (the SDK registers the
    Python name; the CLI shows lint-data-processor for lint_data_processor)."""
    names = load_catalog(REPO_ROOT).names()
    return {f"{stage}_{name.replace('-', '_')}" for stage in CHECK_STAGES for name in names}


def test_checks_generators_and_up_are_registered_with_the_real_sdk() -> None:
    done = python(CONVENTIONS, DAGGER_MAIN_OBJECT="Ci")

    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    checks = catalog_checks() | REPOSITORY_CHECKS
    # Fails when a service of the catalog has no checks, or a check names a removed service.
    assert set(found["check"]) == checks
    assert set(found["generate"]) == GENERATORS
    assert set(found["up"]) == UP
    # `dagger check` calls checks without arguments: none may be required.
    assert found["required"] == {key: [] for key in checks | GENERATORS | UP}


def test_each_service_check_says_what_it_runs_and_scans_never_come_from_the_cache() -> None:
    done = python(CONVENTIONS, DAGGER_MAIN_OBJECT="Ci")

    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert "data-processor" in found["docs"]["lint_data_processor"]
    assert "mypy --strict" in found["docs"]["lint_backend"]
    assert "PostgreSQL/Redis" in found["docs"]["test_auth"]
    assert "Trivy" in found["docs"]["scan_frontend"]
    scans = {name for name in found["cache"] if name.startswith("scan_")}
    assert scans == {c for c in catalog_checks() if c.startswith("scan_")}
    assert {found["cache"][name] for name in scans} == {"never"}
    assert found["cache"]["lint_backend"] is None


def test_severity_and_release_mode_are_enums_the_cli_validates() -> None:
    done = python(CONVENTIONS, DAGGER_MAIN_OBJECT="Ci")

    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["enums"] == {
        "Severity": ["LOW", "MEDIUM", "HIGH", "CRITICAL"],
        "ReleaseMode": ["COMMIT", "PULL_REQUEST"],
    }
    assert found["types"] == {"scan": "Severity", "check": "Severity", "release": "ReleaseMode"}


def test_the_severity_enum_is_the_scan_policy_s_gate() -> None:
    from ci.core import scanpolicy
    from ci.main import Severity

    for member in Severity:
        assert scanpolicy.Severity.parse(member.value).name == member.value


CACHE_POLICIES = """
import json, ci
functions = ci.Ci.__dagger_module__.get_object("Ci").functions
print(json.dumps({name: f.cache_policy for name, f in functions.items()}))
"""


def test_verdicts_that_depend_on_today_are_never_served_from_the_function_cache() -> None:
    done = python(CACHE_POLICIES, DAGGER_MAIN_OBJECT="Ci")

    assert done.returncode == 0, done.stderr
    policies = json.loads(done.stdout)
    # scan: today's vulnerability DB and the ignore list's expiry dates; check: scans inside;
    # publish: a push; integration and stack: a cluster of their own, started for the call.
    # Everything else is a function of its inputs (default 7-day cache).
    never = ("scan", "check", "publish", "integration", "stack")
    assert {name: policies[name] for name in never} == dict.fromkeys(never, "never")
    assert policies["lint"] is None
    assert policies["test"] is None


def test_engine_tests_always_run_instead_of_coming_from_the_cache() -> None:
    code = CACHE_POLICIES.replace("ci.Ci", "ci_tests.CiTests").replace('"Ci"', '"CiTests"')
    code = code.replace("import json, ci", "import json, ci_tests")

    done = python(code, REPO_ROOT / "ci" / "tests" / "src", DAGGER_MAIN_OBJECT="CiTests")

    assert done.returncode == 0, done.stderr
    policies = json.loads(done.stdout)
    assert set(policies) == ENGINE_TESTS
    assert set(policies.values()) == {"never"}


ARGUMENTS = """
import json, ci
functions = ci.Ci.__dagger_module__.get_object("Ci").functions
print(json.dumps({
    name: {p.name: p.default_value for p in functions[name].parameters.values()}
    for name in ("deploy", "preview")
}))
"""


def test_deploy_tags_after_the_build_branch_and_preview_diffs_against_its_base() -> None:
    done = python(ARGUMENTS, DAGGER_MAIN_OBJECT="Ci")

    assert done.returncode == 0, done.stderr
    args = json.loads(done.stdout)
    # The build branch names the images (main-<sha7>); the GitOps branch only says where the
    # values commits go: two arguments, never one passed as the other.
    assert args["deploy"]["branch"] == json.dumps("main")  # default values travel as JSON
    assert "gitops_branch" in args["deploy"]
    assert args["preview"]["base"] == json.dumps("origin/main")


def test_pure_core_and_plan_cli_do_not_import_dagger() -> None:
    core = "ci.core.scanpolicy, ci.core.toolchain, ci.core.buildplan, ci.core.toolversions"
    done = python(f"import sys, ci.plan, {core}; print('dagger' in sys.modules)")

    assert done.stdout.strip() == "False", done.stderr


def test_engine_and_sdk_versions_are_pinned_to_the_same_release() -> None:
    module = json.loads((REPO_ROOT / "dagger.json").read_text())
    tests_module = json.loads((REPO_ROOT / "ci" / "tests" / "dagger.json").read_text())
    sdk_pin = f"dagger-io=={version('dagger-io')}"

    assert module == {
        "name": "ci",
        "engineVersion": f"v{version('dagger-io')}",
        "sdk": {"source": "python"},
        "source": "ci",
    }
    assert tests_module["engineVersion"] == module["engineVersion"]
    assert tests_module["dependencies"] == [{"name": "ci", "source": "../.."}]
    for project in (REPO_ROOT / "ci", REPO_ROOT / "ci" / "tests"):
        config = tomllib.loads((project / "pyproject.toml").read_text())
        assert sdk_pin in config["project"]["dependencies"]
        assert config["tool"]["uv"]["sources"]["dagger-io"] == {"path": "sdk", "editable": True}
        assert config["build-system"]["build-backend"] == "uv_build"
        lock = tomllib.loads((project / "uv.lock").read_text())
        sdk = next(p for p in lock["package"] if p["name"] == "dagger-io")
        assert sdk["source"] == {"editable": "sdk"}
    root = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert sdk_pin in root["dependency-groups"]["dev"]


def engine_unavailable() -> str | None:
    """Why the engine tests cannot run here, or None when they can."""
    cli = shutil.which("dagger")
    if cli is None:
        return "no `dagger` CLI on PATH: engine tests run in GitHub Actions (dagger-for-github)"
    try:
        probe = subprocess.run(
            [cli, "core", "version"], capture_output=True, text=True, timeout=300, check=False
        )
    except subprocess.TimeoutExpired:
        return "`dagger core version` timed out after 300s: no reachable Dagger engine"
    if probe.returncode != 0:
        return f"no reachable Dagger engine: {probe.stderr.strip()[-300:]}"
    return None


@pytest.mark.engine
def test_dagger_test_module_passes_on_a_real_engine() -> None:
    reason = engine_unavailable()
    if reason is not None:
        print(f"engine tests skipped: {reason}", file=sys.stderr)
        pytest.skip(reason)

    done = subprocess.run(
        ["dagger", "call", "-m", "ci/tests", "all"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=ENGINE_TIMEOUT_SECONDS,
        check=False,
    )

    assert done.returncode == 0, done.stderr[-4000:]
