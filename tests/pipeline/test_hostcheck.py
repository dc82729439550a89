"""Host mode's own decisions: what cannot run on this machine, job order, parallelism."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import msgspec
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
    without_builder_banner,
)
from ci.core.recipes import build_context
from ci.host.stages import HostStages, copy_context


def service(name: str) -> Service:
    return msgspec.convert(
        {
            "name": name,
            "kind": "python",
            "description": name,
            "port": 8000,
            "health": "/health",
            "ready": "/ready",
            "route": f"/api/{name}",
            "run": ["uvicorn", "app:app"],
        },
        Service,
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


def test_the_host_build_context_is_the_engines(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    for path in [
        "pyproject.toml",
        "uv.lock",
        "README.md",
        "services/auth/Dockerfile",
        "services/auth/src/auth/main.py",
        "services/auth/.venv/bin/python",
        "services/auth/src/auth/__pycache__/main.cpython-311.pyc",
        "services/servicekit/src/servicekit/__init__.py",
        "services/servicekit/node_modules/x/index.js",
        "services/backend/src/backend/main.py",
    ]:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text("x\n")
    auth = msgspec.structs.replace(service("auth"), uses=["servicekit"])
    context = tmp_path / "context"

    copy_context(root, build_context(auth), context)

    copied = sorted(str(p.relative_to(context)) for p in context.rglob("*") if p.is_file())
    assert copied == [
        "pyproject.toml",
        "services/auth/Dockerfile",
        "services/auth/src/auth/main.py",
        "services/servicekit/src/servicekit/__init__.py",
        "uv.lock",
    ]


LEGACY_BUILD_LOG = """\
(last 60 lines of test-output/auth/build.log)
DEPRECATED: The legacy builder is deprecated and will be removed in a future release.
            Install the buildx component to build images with BuildKit:
            https://docs.docker.com/go/buildx/

Step 1/2 : FROM scratch
failed to read dockerfile: no such file
"""


def test_a_failed_builds_detail_leaves_out_the_legacy_builder_banner() -> None:
    detail = without_builder_banner(LEGACY_BUILD_LOG)

    assert "DEPRECATED" not in detail
    assert "buildx" not in detail
    assert "failed to read dockerfile: no such file" in detail
    assert detail.startswith("(last 60 lines of test-output/auth/build.log)\n\nStep 1/2")


@contextmanager
def docker_socket_that_goes_away(folder: Path) -> Iterator[str]:
    """A unix socket that exists while the run starts and is closed afterwards: what a
    Docker daemon stopped mid-run looks like to the docker CLI (connection refused)."""
    path = folder / "docker.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen()
    try:
        yield f"unix://{path}"
    finally:
        server.close()


@pytest.mark.skipif(shutil.which("docker") is None, reason="needs the docker CLI (not a daemon)")
def test_a_daemon_that_went_away_mid_run_makes_build_and_scan_not_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "repo"
    (root / "services/auth").mkdir(parents=True)
    (root / "services/auth/Dockerfile").write_text("FROM scratch\n")
    with docker_socket_that_goes_away(tmp_path) as docker_host:
        monkeypatch.setenv("DOCKER_HOST", docker_host)
        # Probed at the start, when the daemon was there.
        stages = HostStages(
            root=root,
            output=tmp_path / "out",
            tools=Tools(docker="", trivy=True, hadolint=False),
        )

    built = stages.build(service("auth"))
    scanned = stages.scan(service("auth"), built=True)

    assert (built.ok, built.verdict) == (True, f"not run: {NO_DOCKER}")
    assert scanned.verdict == f"not run: {NO_HADOLINT}; image scan: {NO_DOCKER}"
