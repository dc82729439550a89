"""Containers the stages run in: the one toolchain, backing services, git.

Plain functions (no @function): the Dagger SDK's decorated methods lose their types when called
from our own code, so everything here is undecorated and typed with the SDK's real classes.
"""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Callable
from dataclasses import dataclass

import dagger
from dagger import dag

from ci.core import recipes, toolversions
from ci.core import toolchain as layout
from ci.core.catalog import Service
from ci.core.toolchain import (
    SystemPackage,
    backing_service_key,
    postgres_server_args,
    redis_server_args,
)

REPO = layout.REPO
NODE_MODULES = "/usr/local/lib/node_modules"
ContainerStep = Callable[[dagger.Container], dagger.Container]


@dataclass(frozen=True)
class Images:
    """Pinned base images; every one is a constructor argument of Ci."""

    python: str
    node: str
    postgres: str
    redis: str
    trivy: str
    git: str


def with_system_packages(packages: list[SystemPackage]) -> ContainerStep:
    """apt-get install of .ci/system-packages.txt: the same list `make setup` installs."""
    names = shlex.join(p.name for p in packages)
    script = (
        "apt-get update -qq && apt-get install -y -qq --no-install-recommends "
        f"{names} && rm -rf /var/lib/apt/lists/*"
    )

    def install(ctr: dagger.Container) -> dagger.Container:
        return ctr.with_env_variable("DEBIAN_FRONTEND", "noninteractive").with_exec(
            ["sh", "-c", script]
        )

    return install


def with_node(images: Images) -> ContainerStep:
    """node and npm from the pinned Node image (Debian's own node is older than the front end
    needs); both images are Debian bookworm, so the binary finds its libraries."""
    node = dag.container().from_(images.node)

    def add(ctr: dagger.Container) -> dagger.Container:
        return (
            ctr.with_file("/usr/local/bin/node", node.file("/usr/local/bin/node"))
            .with_directory(f"{NODE_MODULES}/npm", node.directory(f"{NODE_MODULES}/npm"))
            .with_exec(["ln", "-sf", f"{NODE_MODULES}/npm/bin/npm-cli.js", "/usr/local/bin/npm"])
            .with_exec(["ln", "-sf", f"{NODE_MODULES}/npm/bin/npx-cli.js", "/usr/local/bin/npx"])
        )

    return add


def with_uv(source: dagger.Directory) -> ContainerStep:
    """uv from PyPI, each wheel's hash pinned from uv.lock (as `make setup` installs it)."""
    pin = f"/tmp/{posixpath.basename(toolversions.UV_REQUIREMENTS)}"  # noqa: S108 - in the container

    def add(ctr: dagger.Container) -> dagger.Container:
        return ctr.with_file(pin, source.file(toolversions.UV_REQUIREMENTS)).with_exec(
            [
                "pip",
                "install",
                "--quiet",
                "--no-cache-dir",
                "--no-deps",
                "--require-hashes",
                "-r",
                pin,
            ]
        )

    return add


def toolchain(
    source: dagger.Directory,
    images: Images,
    packages: list[SystemPackage],
    npm_folders: list[str],
) -> dagger.Container:
    """ONE container for lint and test of every service and of the repository suite, laid out
    as `make setup` lays out a checkout (ci.core.toolchain): the Python image, the Debian
    packages the tests need (PostgreSQL, Redis, Chromium, registry, git), node, the dev venv at
    /repo/.venv and node_modules in every npm folder. The lock files come first, so those
    layers stay cached while only source files change."""
    ctr = (
        dag.container()
        .from_(images.python)
        .with_(with_system_packages(packages))
        .with_(with_node(images))
        .with_(with_uv(source))
        # uv and npm lock their caches themselves, so concurrent pipelines may share them.
        .with_mounted_cache("/root/.cache/uv", dag.cache_volume("ci-uv"))
        .with_mounted_cache("/root/.npm", dag.cache_volume("ci-npm"))
        .with_(with_environment(layout.environment()))
        .with_workdir(REPO)
    )
    lock_files = [*layout.PYTHON_LOCK_FILES, *layout.npm_manifests(npm_folders)]
    ctr = ctr.with_directory(REPO, source.filter(include=lock_files))
    ctr = with_steps(ctr, layout.dependency_steps(npm_folders))
    return with_steps(ctr.with_directory(REPO, source), layout.source_steps())


def with_history(ctr: dagger.Container, repo: dagger.Directory) -> dagger.Container:
    """The checkout's .git at /repo/.git: the suite's tests that read history (chart version
    bumps against the base, Argo CD revisions, tracked files) find a real work tree."""
    history = ctr.with_directory(f"{REPO}/.git", repo.directory(".git"))
    return with_steps(history, layout.git_steps())


def with_environment(env: dict[str, str]) -> ContainerStep:
    def add(ctr: dagger.Container) -> dagger.Container:
        for name, value in env.items():
            ctr = ctr.with_env_variable(name, value)
        return ctr

    return add


def with_step(
    ctr: dagger.Container,
    step: recipes.Step,
    expect: dagger.ReturnType = dagger.ReturnType.SUCCESS,
) -> dagger.Container:
    """A recipe Step as `with_exec`: in its working directory (relative to the checkout), with
    its environment; `python -m ci.check` runs the same Step as a host process."""
    ctr = with_environment(step.env)(ctr)
    workdir = posixpath.normpath(f"{REPO}/{step.workdir}")
    return ctr.with_workdir(workdir).with_exec(step.args, expect=expect)


def with_steps(ctr: dagger.Container, steps: list[recipes.Step]) -> dagger.Container:
    for step in steps:
        ctr = with_step(ctr, step)
    return ctr.with_workdir(REPO)


def for_service(ctr: dagger.Container, service: Service) -> dagger.Container:
    """The toolchain set up for one service: node services work in their folder, Python ones
    type-check with their own MYPYPATH."""
    if service.kind == "node":
        return ctr.with_workdir(f"{REPO}/{service.folder}")
    return ctr.with_env_variable("MYPYPATH", recipes.mypy_path(service))


def postgres(images: Images, key: str) -> dagger.Service:
    """A throw-away PostgreSQL for one test run (trust auth inside the engine's network only).
    `key` makes the definition, and so the instance, the run's own."""
    return (
        dag.container()
        .from_(images.postgres)
        .with_env_variable("POSTGRES_HOST_AUTH_METHOD", "trust")
        .with_env_variable("CI_TEST_RUN", key)
        .with_exposed_port(5432)
        .as_service(args=postgres_server_args(), use_entrypoint=True)
    )


def redis(images: Images, key: str) -> dagger.Service:
    return (
        dag.container()
        .from_(images.redis)
        .with_env_variable("CI_TEST_RUN", key)
        .with_exposed_port(6379)
        .as_service(args=redis_server_args(), use_entrypoint=True)
    )


async def with_backing_services(
    ctr: dagger.Container, service: Service, images: Images
) -> dagger.Container:
    """Bind what service.yaml `needs`, each its own instance for this test run, and export
    TEST_DATABASE_URL / TEST_REDIS_URL."""
    run = await ctr.id()  # the call chain's identity: equal containers, equal key
    if "postgres" in service.needs:
        key = backing_service_key(service.name, "postgres", run)
        ctr = ctr.with_service_binding(recipes.POSTGRES_HOST, postgres(images, key))
    if "redis" in service.needs:
        key = backing_service_key(service.name, "redis", run)
        ctr = ctr.with_service_binding(recipes.REDIS_HOST, redis(images, key))
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
