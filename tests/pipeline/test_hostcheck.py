"""Host mode's own decisions: what cannot run on this machine, job order, parallelism."""

from __future__ import annotations

import pytest
from ci.core.affected import affected
from ci.core.catalog import Catalog, Service
from ci.core.hostcheck import (
    NO_DOCKER,
    NO_HADOLINT,
    NO_TRIVY,
    Job,
    Tools,
    image_scan_not_run,
    jobs,
    parallelism,
    scan_not_run,
)


def service(name: str) -> Service:
    return Service.model_validate(
        {
            "name": name,
            "kind": "python",
            "description": name,
            "port": 8000,
            "health": "/health",
            "ready": "/ready",
            "route": f"/api/{name}",
            "run": ["uvicorn", "app:app"],
        }
    )


CATALOG = Catalog(services=(service("auth"), service("backend")), libraries=frozenset())
EVERYTHING = Tools(docker="", trivy=True, hadolint=True)


def test_a_missing_tool_is_named_never_passed_silently() -> None:
    assert image_scan_not_run(EVERYTHING, built=True) == ""
    assert scan_not_run(EVERYTHING, built=True) == ""
    no_docker = Tools(docker=NO_DOCKER, trivy=True, hadolint=True)
    assert scan_not_run(no_docker, built=False) == f"image scan: {NO_DOCKER} (hadolint ran)"
    no_trivy = Tools(docker="", trivy=False, hadolint=True)
    assert scan_not_run(no_trivy, built=True) == f"image scan: {NO_TRIVY} (hadolint ran)"
    assert image_scan_not_run(EVERYTHING, built=False) == "the image was not built"
    nothing = Tools(docker=NO_DOCKER, trivy=False, hadolint=False)
    assert scan_not_run(nothing, built=False) == f"{NO_HADOLINT}; image scan: {NO_DOCKER}"


def test_jobs_start_with_the_repository_suite_and_the_tests() -> None:
    plan = affected(CATALOG, [], everything=True)

    assert jobs(plan) == [
        Job(service="test-repo", stage="test"),
        Job(service="auth", stage="test"),
        Job(service="backend", stage="test"),
        Job(service="auth", stage="lint"),
        Job(service="backend", stage="lint"),
        Job(service="auth", stage="build+scan"),
        Job(service="backend", stage="build+scan"),
    ]
    assert jobs(affected(CATALOG, [])) == []
    assert jobs(affected(CATALOG, ["README.md"])) == [Job(service="test-repo", stage="test")]


def test_parallelism_is_one_per_core_unless_asked() -> None:
    assert parallelism(2, None) == 2
    assert parallelism(None, None) == 1
    assert parallelism(2, 5) == 5
    with pytest.raises(ValueError, match="--jobs 0"):
        parallelism(2, 0)
