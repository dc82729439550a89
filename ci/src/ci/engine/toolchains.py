"""Containers the stages run in: pinned base images, cache volumes, backing services.

Plain functions (no @function): the Dagger SDK's decorated methods lose their types when called
from our own code, so everything here is undecorated and typed with the SDK's real classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagger
from dagger import dag

from ci.core import recipes
from ci.core.catalog import Service

REPO = "/repo"
VENV = "/opt/venv"
PATH = f"{VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Files that decide the Python dev environment: copied first so the venv layer stays cached
# while only source files change.
PYTHON_LOCK_FILES = ["pyproject.toml", "uv.lock", "services/*/pyproject.toml"]
NODE_LOCK_FILES = ["package.json", "package-lock.json"]


@dataclass(frozen=True)
class Images:
    """Pinned base images; every one is a constructor argument of Ci."""

    python: str
    node: str
    uv: str
    postgres: str
    redis: str
    trivy: str
    hadolint: str
    git: str


def python_toolchain(source: dagger.Directory, images: Images) -> dagger.Container:
    """The repository's root tooling (ruff, mypy, pytest, the workspace) in a Python image."""
    uv = dag.container().from_(images.uv).file("/uv")
    deps = source.filter(include=PYTHON_LOCK_FILES)
    return (
        dag.container()
        .from_(images.python)
        .with_file("/usr/local/bin/uv", uv)
        .with_mounted_cache("/root/.cache/uv", dag.cache_volume("ci-uv"))
        .with_mounted_cache("/root/.cache/pip", dag.cache_volume("ci-pip"))
        .with_env_variable("UV_LINK_MODE", "copy")
        .with_env_variable("UV_PROJECT_ENVIRONMENT", VENV)
        .with_env_variable("UV_PYTHON_DOWNLOADS", "never")
        .with_env_variable("PATH", PATH)
        .with_workdir(REPO)
        .with_directory(REPO, deps)
        .with_exec(
            ["uv", "sync", "--frozen", "--all-packages", "--group", "dev", "--no-install-workspace"]
        )
        .with_directory(REPO, source)
        .with_exec(["uv", "sync", "--frozen", "--all-packages", "--group", "dev"])
    )


def node_toolchain(source: dagger.Directory, service: Service, images: Images) -> dagger.Container:
    """The service's node project with `npm ci` done (dependencies cached by the lock file)."""
    workdir = f"{REPO}/{service.folder}"
    project = source.directory(service.folder)
    return (
        dag.container()
        .from_(images.node)
        .with_mounted_cache("/root/.npm", dag.cache_volume("ci-npm"))
        .with_workdir(workdir)
        .with_directory(workdir, project.filter(include=NODE_LOCK_FILES))
        .with_exec(["npm", "ci", "--no-audit", "--no-fund"])
        .with_directory(workdir, project, exclude=["node_modules/"])
    )


def toolchain(source: dagger.Directory, service: Service, images: Images) -> dagger.Container:
    if service.kind == "node":
        return node_toolchain(source, service, images)
    return python_toolchain(source, images).with_env_variable(
        "MYPYPATH", recipes.mypy_path(service)
    )


def postgres(images: Images) -> dagger.Service:
    """A throw-away PostgreSQL for tests (trust auth inside the engine's network only)."""
    return (
        dag.container()
        .from_(images.postgres)
        .with_env_variable("POSTGRES_HOST_AUTH_METHOD", "trust")
        .with_exposed_port(5432)
        .as_service(use_entrypoint=True)
    )


def redis(images: Images) -> dagger.Service:
    return (
        dag.container().from_(images.redis).with_exposed_port(6379).as_service(use_entrypoint=True)
    )


def with_backing_services(
    ctr: dagger.Container, service: Service, images: Images
) -> dagger.Container:
    """Bind what service.yaml `needs` and export TEST_DATABASE_URL / TEST_REDIS_URL."""
    if "postgres" in service.needs:
        ctr = ctr.with_service_binding(recipes.POSTGRES_HOST, postgres(images))
    if "redis" in service.needs:
        ctr = ctr.with_service_binding(recipes.REDIS_HOST, redis(images))
    for name, value in recipes.env_for_tests(service).items():
        ctr = ctr.with_env_variable(name, value)
    return ctr


def git(repo: dagger.Directory, images: Images) -> dagger.Container:
    """git over a checkout (with its .git), trusted despite the engine's file ownership."""
    return (
        dag.container()
        .from_(images.git)
        .with_directory(REPO, repo)
        .with_workdir(REPO)
        .with_exec(["git", "config", "--global", "--add", "safe.directory", REPO])
    )
