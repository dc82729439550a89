"""What deploy checks and what a preview builds or reuses (ci.core.buildplan)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ci.core.affected import affected
from ci.core.buildplan import pinned_image, preview_build, requested_plan, values_file
from ci.core.catalog import Catalog, load_catalog
from pipeline.repos import BASE_FILES, MakeRepo

REPO_ROOT = Path(__file__).resolve().parents[2]
DIGEST = "sha256:" + "ab" * 32
PINNED = f'image:\n  repository: ghcr.io/acme/auth\n  tag: "main-1a2b3c4"\n  digest: "{DIGEST}"\n'


@pytest.fixture
def catalog(make_repo: MakeRepo) -> Catalog:
    return load_catalog(make_repo(BASE_FILES).root)


def test_named_services_replace_the_affected_ones(catalog: Catalog) -> None:
    plan = affected(catalog, ["services/auth/src/auth/main.py"])

    narrowed = requested_plan(plan, catalog, ["frontend", "backend", "backend"])

    assert narrowed.names() == ["backend", "frontend"]
    assert {r.cause for s in narrowed.services for r in s.reasons} == {"requested"}
    assert narrowed.unaffected == ["auth"]
    with pytest.raises(KeyError):
        requested_plan(plan, catalog, ["no-such-service"])


def test_pinned_image_reads_tag_and_digest_of_a_values_file() -> None:
    assert pinned_image(PINNED, "v.yaml") == f"main-1a2b3c4@{DIGEST}"
    assert pinned_image('image:\n  tag: "0.1.0"\n  digest: ""\n', "v.yaml") is None
    with pytest.raises(ValueError, match=r"v.yaml: field 'image.digest'"):
        pinned_image('image:\n  tag: "x"\n  digest: "sha256:short"\n', "v.yaml")
    with pytest.raises(ValueError, match=r"v.yaml: field 'image.tag'"):
        pinned_image(f'image:\n  tag: "bad tag"\n  digest: "{DIGEST}"\n', "v.yaml")
    with pytest.raises(ValueError, match=r"v.yaml: field 'image' is missing"):
        pinned_image("replicas: 1\n", "v.yaml")


def test_the_repositorys_staging_values_files_parse() -> None:
    for name in load_catalog(REPO_ROOT).names():
        path = REPO_ROOT / values_file(name)
        pinned_image(path.read_text(), str(path))  # raises on a malformed pin


def test_preview_builds_changes_and_unpinned_services_and_reuses_the_rest(
    catalog: Catalog,
) -> None:
    plan = affected(catalog, ["services/auth/src/auth/main.py"])
    backend = f"main-1a2b3c4@{DIGEST}"

    decision = preview_build(plan, catalog, {"auth": backend, "backend": backend})

    assert decision.build == ["auth", "frontend"]  # changed; never pinned (no digest yet)
    assert decision.reuse == {"backend": backend}


def test_a_branch_without_changes_to_services_builds_nothing_pinned(catalog: Catalog) -> None:
    pinned = dict.fromkeys(catalog.names(), f"main-1a2b3c4@{DIGEST}")

    decision = preview_build(affected(catalog, ["README.md"]), catalog, pinned)

    assert decision.build == []
    assert decision.reuse == pinned
