"""The checks of `dagger check` and `make check --check`: one name per stage of every service,
taken from the catalog, selected by the same patterns on the host and on the engine."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from ci.core import checks, generated
from ci.core.affected import affected
from ci.core.catalog import load_catalog
from ci.core.hostcheck import GENERATED_JOB, Job, check_name, checked_jobs
from pipeline.test_hostcheck import CATALOG

ROOT = Path(__file__).resolve().parents[2]


def test_every_stage_of_every_service_is_a_check_named_as_the_cli_shows_it() -> None:
    names = checks.all_names(["auth", "data-processor"])

    assert names == [
        "lint-auth",
        "lint-data-processor",
        "test-auth",
        "test-data-processor",
        "scan-auth",
        "scan-data-processor",
        "test-repository",
        "generated-up-to-date",
    ]
    assert checks.ServiceCheck("lint", "data-processor").python_name == "lint_data_processor"


def test_patterns_select_as_dagger_check_does_and_a_pattern_matching_nothing_is_named() -> None:
    names = checks.all_names(["auth", "backend"])

    assert checks.select(["lint-*"], names) == ["lint-auth", "lint-backend"]
    assert checks.select(["scan-auth", "test-repo*"], names) == ["scan-auth", "test-repository"]
    assert checks.select([], names) == names
    with pytest.raises(ValueError, match=r"--check lint-frontend: matches no check"):
        checks.select(["lint-*", "lint-frontend"], names)


def test_host_jobs_carry_the_engines_check_names() -> None:
    plan = affected(CATALOG, [], frozenset(), everything=True)

    assert check_name(Job(service="auth", stage="build+scan")) == "scan-auth"
    assert check_name(Job(service="test-repo", stage="test")) == "test-repository"
    assert check_name(GENERATED_JOB) == "generated-up-to-date"
    assert checked_jobs(plan, ["scan-*"]) == [
        Job(service="auth", stage="build+scan"),
        Job(service="backend", stage="build+scan"),
    ]
    assert checked_jobs(plan, ["lint-backend", "generated-*"]) == [
        Job(service="backend", stage="lint"),
        GENERATED_JOB,
    ]


def catalog_copy(tmp_path: Path) -> Path:
    """The catalog (services/*/service.yaml, library folders) and the generated names file."""
    for folder in (p for p in (ROOT / "services").iterdir() if p.is_dir()):
        (tmp_path / "services" / folder.name).mkdir(parents=True)
    for path in ROOT.glob("services/*/service.yaml"):
        shutil.copyfile(path, tmp_path / path.relative_to(ROOT))
    names = tmp_path / checks.NAMES_FILE
    names.parent.mkdir(parents=True)
    shutil.copyfile(ROOT / checks.NAMES_FILE, names)
    return tmp_path


def test_the_module_s_service_list_is_generated_from_the_catalog_and_up_to_date() -> None:
    from ci.service_names import SERVICE_NAMES

    assert list(SERVICE_NAMES) == load_catalog(ROOT).names()
    assert generated.stale(ROOT, checks.service_names_module(ROOT)) == []


@pytest.mark.parametrize("change", ["added", "removed"])
def test_a_service_added_or_removed_makes_the_module_s_list_stale(
    tmp_path: Path, change: str
) -> None:
    root = catalog_copy(tmp_path)
    if change == "removed":
        shutil.rmtree(root / "services" / "media-storage")
    else:
        (root / "services" / "search").mkdir()
        text = (root / "services" / "ai" / "service.yaml").read_text()
        (root / "services" / "search" / "service.yaml").write_text(
            text.replace("name: ai", "name: search").replace("/api/ai", "/api/search")
        )

    files = checks.service_names_module(root)

    assert generated.stale(root, files) == [checks.NAMES_FILE]
    generated.write(root, files)
    listed = (root / checks.NAMES_FILE).read_text()
    assert ('"search"' in listed) == (change == "added")
    assert ('"media-storage"' in listed) == (change == "added")
