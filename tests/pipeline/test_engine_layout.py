"""The repository suite in the engine's layout (tests/pipeline/enginelayout.py).

`test-repo` runs in the toolchain container, laid out from SOURCE_IGNORE and the toolchain's
own steps. Its first engine run failed 36 tests that pass in a developer's checkout (no
tests/crds/node_modules, no git work tree, the venv outside /repo): here the same layout is
built on the host and the recipe's own command runs in it. The whole suite takes as long as
`make test`, so this runs the recipe over the tests that read the layout (node modules of every
npm folder, git history and tracked files, the venv's tools), chosen by what they read.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from ci.core import recipes, toolchain
from ci.core.catalog import load_catalog
from pipeline.enginelayout import EngineCheckout, lay_out, uploaded_files

ROOT = Path(__file__).resolve().parents[2]
# Tests that read what `make setup` lays out around the sources: CRD schemas from
# tests/crds/node_modules, chart versions against git history, tracked files, the front end's
# node_modules, and the venv's tools (.venv/bin: actionlint, ruff, ...).
LAYOUT_READERS = [
    "tests/charts/test_versions.py",
    "tests/charts/test_secrets.py",
    "tests/charts/test_convergence.py",
    "tests/manifests/test_argocd.py",
    "tests/delivery/test_workflows.py",
    "tests/pipeline/test_generated.py",
]


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> EngineCheckout:
    return lay_out(tmp_path_factory.mktemp("engine"))


def test_the_upload_leaves_out_environments_caches_and_outputs() -> None:
    files = uploaded_files()

    for left_out in (".git/", ".venv/", "node_modules/", "__pycache__/", "test-output/"):
        assert not any(f.startswith(left_out) or f"/{left_out}" in f for f in files), left_out
    assert "tests/crds/package-lock.json" in files
    assert "ci/src/ci/main.py" in files


def test_npm_ci_runs_in_every_folder_make_setup_installs() -> None:
    makefile = (ROOT / "Makefile").read_text()
    variables = dict(re.findall(r"^(\w+)\s*:=\s*(\S+)$", makefile, re.MULTILINE))
    installed = {variables[v] for v in re.findall(r"cd \$\((\w+)\) && npm ci", makefile)}
    lock_files = [f for f in uploaded_files() if f.endswith(toolchain.NPM_LOCK_FILE)]

    folders = toolchain.npm_folders(lock_files)

    assert set(folders) == installed
    assert folders == ["services/frontend", "tests/crds"]


def test_the_toolchain_lays_the_checkout_out_as_make_setup_does(checkout: EngineCheckout) -> None:
    assert (checkout.repo / ".venv" / "bin" / "pytest").is_file()
    assert (checkout.repo / "tests" / "crds" / "node_modules").is_dir()
    assert (checkout.repo / "services" / "frontend" / "node_modules").is_dir()
    assert (checkout.repo / ".git").is_dir()


def test_the_repository_recipe_passes_in_the_engine_layout(checkout: EngineCheckout) -> None:
    junit = checkout.repo.parent / "junit.xml"
    # The recipe's own command, its test paths narrowed to the layout readers.
    step = recipes.step_for_repo_tests(load_catalog(checkout.repo), str(junit), LAYOUT_READERS)

    done = checkout.run(step, ["-p", "no:cacheprovider", "-q"])

    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert junit.is_file()
