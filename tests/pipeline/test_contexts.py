"""What the engine uploads (SOURCE_IGNORE) and what each service stage reads
(SERVICE_STAGE_CONTEXT), checked against the files and settings that decide them."""

from __future__ import annotations

import argparse
import importlib.util
import tomllib
from pathlib import Path

import pytest
from ci.cluster import parser as cluster_parser
from ci.core import recipes

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def in_service_context(path: str) -> bool:
    return any(path == p or path.startswith(p) for p in recipes.SERVICE_STAGE_CONTEXT)


def sdk_folder(module: str) -> str:
    """Where the engine generates a module's SDK: its [tool.uv.sources] dagger-io path."""
    config = tomllib.loads((ROOT / module / "pyproject.toml").read_text())
    return f"{module}/{config['tool']['uv']['sources']['dagger-io']['path']}"


def cluster_output_default() -> Path:
    subcommands = next(
        a for a in cluster_parser()._actions if isinstance(a, argparse._SubParsersAction)
    )
    default = subcommands.choices["run"].get_default("output")
    assert isinstance(default, Path)
    return default


@pytest.mark.parametrize(
    "path",
    [
        f"{sdk_folder('ci')}/dagger/__init__.py",
        f"{sdk_folder('ci/tests')}/dagger/__init__.py",
        f"{cluster_output_default().as_posix()}/diagnostics/pods.txt",
        "services/servicekit/src/servicekit.egg-info/PKG-INFO",
        "test-output/auth/junit.xml",
    ],
)
def test_what_tools_generate_locally_is_never_uploaded(path: str) -> None:
    assert recipes.source_ignored(path)


@pytest.mark.parametrize(
    "path", ["README.md", "charts/auth/values.yaml", "argocd/root.yaml", "k3s/bootstrap.sh"]
)
def test_a_change_outside_the_services_re_runs_no_service_lint_or_test(path: str) -> None:
    assert not in_service_context(path)


def test_the_pytest_plugins_the_root_configuration_loads_are_in_the_service_context() -> None:
    options = PYPROJECT["tool"]["pytest"]["ini_options"]
    plugins = [options["addopts"][i + 1] for i, a in enumerate(options["addopts"]) if a == "-p"]
    roots = [ROOT / p for p in options["pythonpath"]]
    assert plugins
    for plugin in plugins:
        relative = plugin.replace(".", "/")
        found = [r / f"{relative}.py" for r in roots if (r / f"{relative}.py").is_file()]
        found += [r / relative / "__init__.py" for r in roots if (r / relative).is_dir()]
        assert found, f"plugin {plugin} not found on the pytest pythonpath"
        assert in_service_context(found[0].relative_to(ROOT).as_posix()), plugin
    # The plugin's own imports come from the same roots (the harness re-exports ci.localapp).
    spec = importlib.util.find_spec("ci.localapp")
    assert spec is not None
    assert spec.origin is not None
    assert in_service_context(Path(spec.origin).relative_to(ROOT).as_posix())


def test_every_workspace_member_uv_sync_installs_is_in_the_service_context() -> None:
    members = PYPROJECT["tool"]["uv"]["workspace"]["members"]

    for pattern in members:
        for member in ROOT.glob(pattern):
            assert in_service_context(f"{member.relative_to(ROOT).as_posix()}/pyproject.toml")
    for needed in ("pyproject.toml", "uv.lock", ".ci/system-packages.txt"):
        assert in_service_context(needed)
