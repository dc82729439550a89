"""What each stage runs, as data: build context, commands, working directories, environment.

The single source of the stage commands: the Dagger layer turns these Steps into `with_exec`
calls in containers, `python -m ci.check` runs the very same Steps as host processes, and
`make lint` / `make test` run the repository recipes below (`python -m ci.check --recipe`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache

from pydantic import BaseModel, ConfigDict

from ci.core.affected import Plan
from ci.core.catalog import SERVICES_DIR, Catalog, Service

REPO_TESTS_DIR = "tests"
# Kept out of the source the engine uploads, and out of the build contexts host mode copies:
# environments, dependencies and caches that containers rebuild.
SOURCE_IGNORE = [
    ".git",
    "**/.venv",
    "**/node_modules",
    "**/__pycache__",
    "**/*.pyc",
    "**/.mypy_cache",
    "**/.ruff_cache",
    "**/.pytest_cache",
    "**/.hypothesis",
    "**/dist",
    "**/*.egg-info",
    "ci/sdk",
    "ci/tests/sdk",
    "test-output",
    "cluster-output",
    ".cache",
    ".localapp",
]
# What a service's lint and test read: the uv workspace (`uv sync --all-packages` installs every
# member, so all of services/), the root project, lock and tool settings, the toolchain's package
# list, and the pytest plugins the root configuration loads for any pytest run (tests/harness,
# which imports ci.localapp from ci/src). A change to README, charts, argocd, k3s or the other
# suites re-runs no service's lint or test.
SERVICE_STAGE_CONTEXT = [
    "pyproject.toml",
    "uv.lock",
    ".ci/",
    f"{SERVICES_DIR}/",
    f"{REPO_TESTS_DIR}/harness/",
    "ci/src/",
]


@cache
def _ignore_pattern(pattern: str) -> re.Pattern[str]:
    """An ignore pattern as the engine reads it (Docker's pattern matcher): `**` spans folders,
    `*` and `?` stay within one, the pattern is anchored at the context's root."""
    parts = re.split(r"(\*\*/|\*\*|\*|\?)", pattern)
    wild = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
    return re.compile("".join(wild.get(part, re.escape(part)) for part in parts))


def source_ignored(path: str) -> bool:
    """Whether the engine leaves `path` (relative, `/`-separated) out of the uploaded source."""
    return matches_any(path, SOURCE_IGNORE)


def matches_any(path: str, patterns: Sequence[str]) -> bool:
    """Whether `path` or one of its parent folders matches an ignore/include pattern."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    return any(_ignore_pattern(p).fullmatch(prefix) for p in patterns for prefix in prefixes)


# Root files a build context carries besides the service and its libraries (lock and workspace
# metadata; small and rarely changing, so they do not spoil the build cache).
ROOT_CONTEXT_FILES = ("pyproject.toml", "uv.lock")
POSTGRES_HOST = "postgres"
REDIS_HOST = "redis"
JUNIT_DIR = "/out"
JUNIT_FILE = "junit.xml"
# An ephemeral test server inside the engine: trust authentication, no password to leak.
TEST_DATABASE_URL = f"postgresql://postgres@{POSTGRES_HOST}:5432/postgres"
TEST_REDIS_URL = f"redis://{REDIS_HOST}:6379/0"
# The repository-level suite ("test-repo"): everything `make test` runs that no service's own
# suite covers. Its row in the check summary carries this name.
REPO_SUITE = "test-repo"
TRIVY_REPORT = "trivy.json"


class Step(BaseModel):
    """One command of a stage, with a name for the logs.

    `workdir` is relative to the repository root (the engine's toolchain container sets the
    same directory); `env` are variables the command needs on top of the toolchain's.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    args: list[str]
    workdir: str = "."
    env: dict[str, str] = {}


def dockerfile(service: Service) -> str:
    return f"{service.folder}/Dockerfile"


def build_context(service: Service) -> list[str]:
    """Include patterns of the build context: the service, its libraries and the root files."""
    folders = [service.folder, *(f"{SERVICES_DIR}/{lib}" for lib in service.uses)]
    return [*(f"{folder}/" for folder in folders), *ROOT_CONTEXT_FILES]


def context_excludes() -> list[str]:
    """SOURCE_IGNORE as file name patterns, for copying a build context on the host (the
    context holds no ci/sdk nor test-output: only services and root files)."""
    return [p.removeprefix("**/") for p in SOURCE_IGNORE if "/" not in p.removeprefix("**/")]


def build_args(version: str, revision: str, source: str) -> dict[str, str]:
    return {"VERSION": version, "REVISION": revision, "SOURCE": source}


def oci_labels(service: Service, version: str, revision: str, source: str) -> dict[str, str]:
    labels = {
        "org.opencontainers.image.title": service.name,
        "org.opencontainers.image.description": service.description,
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.revision": revision,
    }
    if source:
        labels["org.opencontainers.image.source"] = source
    return labels


def docker_build_step(
    service: Service, context_dir: str, tag: str, version: str, revision: str, source: str
) -> Step:
    """`docker build` over a context directory holding `build_context(service)`: the same
    Dockerfile, build args and labels as the engine's build."""
    args = ["docker", "build", "--file", f"{context_dir}/{dockerfile(service)}", "--tag", tag]
    for key, value in build_args(version, revision, source).items():
        args += ["--build-arg", f"{key}={value}"]
    for key, value in oci_labels(service, version, revision, source).items():
        args += ["--label", f"{key}={value}"]
    return Step(name="docker build", args=[*args, context_dir])


def hadolint_step(dockerfile_path: str, output_format: str) -> Step:
    """hadolint as the scan runs it: findings as a report, the policy decides (--no-fail)."""
    return Step(
        name=f"hadolint {output_format}",
        args=["hadolint", "--no-fail", "-f", output_format, dockerfile_path],
    )


def trivy_steps(image_tar: str, reports: str, scan_options: Sequence[str] = ()) -> list[Step]:
    """Trivy over an image tarball: the JSON report the policy reads, then SARIF and a
    CycloneDX SBOM converted from it (no second scan). `scan_options` say where the
    vulnerability DB comes from (the engine: a prepared cache, `--skip-db-update`)."""
    report = f"{reports}/{TRIVY_REPORT}"
    scan = ["trivy", "image", "--input", image_tar, "--scanners", "vuln", "--list-all-pkgs"]
    scan += [*scan_options, "--format", "json", "--output", report, "--timeout", "15m"]
    convert = ["trivy", "convert", "--format"]
    return [
        Step(name="trivy", args=scan),
        Step(
            name="trivy sarif",
            args=[*convert, "sarif", "--output", f"{reports}/trivy.sarif", report],
        ),
        Step(
            name="trivy sbom",
            args=[*convert, "cyclonedx", "--output", f"{reports}/sbom.cdx.json", report],
        ),
    ]


def mypy_path(service: Service) -> str:
    """MYPYPATH for one service: its src, its libraries' src, the repo test harness and ci/src
    (the harness re-exports the local app's servers)."""
    roots = [f"{service.folder}/src", *(f"{SERVICES_DIR}/{lib}/src" for lib in service.uses)]
    return ":".join([*roots, "ci/src", "tests"])


def ruff_steps(paths: list[str]) -> list[Step]:
    return [
        Step(name="ruff check", args=["ruff", "check", *paths]),
        Step(name="ruff format", args=["ruff", "format", "--check", *paths]),
    ]


def mypy_step(paths: list[str], mypypath: str) -> Step:
    return Step(name="mypy", args=["mypy", *paths], env={"MYPYPATH": mypypath})


def node_lint_steps(folder: str) -> list[Step]:
    return [
        Step(name="eslint", args=["npm", "run", "--silent", "lint"], workdir=folder),
        Step(name="typecheck", args=["npm", "run", "--silent", "typecheck"], workdir=folder),
    ]


def lint_steps(service: Service) -> list[Step]:
    if service.kind == "node":
        return node_lint_steps(service.folder)
    folder = service.folder
    mypy = mypy_step([f"{folder}/src", f"{folder}/tests"], mypy_path(service))
    return [*ruff_steps([folder]), mypy]


def step_for_tests(service: Service, junit: str = f"{JUNIT_DIR}/{JUNIT_FILE}") -> Step:
    """The service's test command, writing JUnit XML to `junit` (absolute, or relative to the
    step's working directory)."""
    if service.kind == "node":
        return Step(
            name="vitest",
            args=[
                "npm",
                "test",
                "--",
                "--reporter=default",
                "--reporter=junit",
                f"--outputFile.junit={junit}",
            ],
            workdir=service.folder,
        )
    return Step(name="pytest", args=["pytest", service.folder, f"--junitxml={junit}"])


def repo_test_paths(catalog: Catalog) -> list[str]:
    """tests/ and every in-repo library (their suites belong to no service)."""
    return [REPO_TESTS_DIR, *(f"{SERVICES_DIR}/{lib}" for lib in sorted(catalog.libraries))]


def step_for_repo_tests(
    catalog: Catalog,
    junit: str = f"{JUNIT_DIR}/{JUNIT_FILE}",
    paths: Sequence[str] | None = None,
) -> Step:
    """pytest over the repository-level suite (or `paths` of it). It starts its own
    PostgreSQL/Redis through the harness (some tests stop and restart them), so it needs the
    toolchain's server binaries and no TEST_DATABASE_URL / TEST_REDIS_URL."""
    selected = repo_test_paths(catalog) if paths is None else list(paths)
    return Step(name="pytest", args=["pytest", *selected, f"--junitxml={junit}"])


# Fails when a generated file is stale (ci.core.generated): the `generated-up-to-date` check.
GENERATED_CHECK = Step(name="generate-check", args=["python", "-m", "ci.generate", "--check"])


def runs_repo_tests(plan: Plan) -> bool:
    """The repository suite runs whenever anything changed or everything was asked for; a plan
    with no change and no service checks nothing."""
    return bool(plan.changed_files or plan.services)


def env_for_tests(
    service: Service, database_url: str = TEST_DATABASE_URL, redis_url: str = TEST_REDIS_URL
) -> dict[str, str]:
    """Environment for the tests: URLs of the backing services the service needs (the engine's
    service bindings by default; the host passes the harness's servers)."""
    env: dict[str, str] = {}
    if "postgres" in service.needs:
        env["TEST_DATABASE_URL"] = database_url
    if "redis" in service.needs:
        env["TEST_REDIS_URL"] = redis_url
    return env


def registry_host(registry: str) -> str:
    """`ghcr.io/acme` -> `ghcr.io`: the address credentials are attached to."""
    host = registry.strip().strip("/").split("/", 1)[0]
    if not host:
        raise ValueError(f"registry {registry!r}: expected host[/namespace], e.g. ghcr.io/acme")
    return host


def image_ref(registry: str, service: str, tag: str) -> str:
    registry_host(registry)
    return f"{registry.strip().strip('/')}/{service}:{tag}"


# --- repository recipes: what `make lint` and `make test` run ------------------------------


class RepoLayout(BaseModel):
    """What the repository recipes need to know about a checkout (found by the caller)."""

    model_config = ConfigDict(frozen=True)

    source_roots: list[str]  # every services/*/src and ci/src
    test_dirs: list[str]  # every services/*/tests and tests
    dockerfiles: list[str]
    shell_scripts: list[str]
    yaml_dirs: list[str]
    node_folders: list[str]  # the folders of the node services


def repo_lint_steps(layout: RepoLayout) -> list[Step]:
    """`make lint`: every service's linters over the whole tree at once, plus the linters of
    the files no service owns (Dockerfiles, shell scripts, YAML, workflows, Markdown links)."""
    mypypath = ":".join([*layout.source_roots, REPO_TESTS_DIR])
    steps = [*ruff_steps(["."]), mypy_step([*layout.source_roots, *layout.test_dirs], mypypath)]
    steps.append(Step(name="hadolint", args=["hadolint", *layout.dockerfiles]))
    shellcheck = ["shellcheck", "--external-sources", *layout.shell_scripts]
    steps.append(Step(name="shellcheck", args=shellcheck))
    steps.append(Step(name="yamllint", args=["yamllint", "--strict", *layout.yaml_dirs]))
    steps.append(Step(name="actionlint", args=["actionlint", "-shellcheck", "shellcheck"]))
    steps.append(doc_links_step())
    for folder in layout.node_folders:
        steps += node_lint_steps(folder)
    return steps


def doc_links_step() -> Step:
    """Every relative link and anchor of the repository's Markdown (ci/src/ci/doclinks.py)."""
    return Step(
        name="doc links", args=["python", "-m", "ci.doclinks", "."], env={"PYTHONPATH": "ci/src"}
    )


def repo_test_steps(layout: RepoLayout) -> list[Step]:
    """`make test`: the node services' unit tests and production builds (the browser test
    drives that build), then one pytest session over every Python suite (`testpaths`)."""
    steps: list[Step] = []
    for folder in layout.node_folders:
        npm = ["npm", "run", "--silent"]
        steps.append(Step(name="vitest", args=[*npm, "test"], workdir=folder))
        steps.append(Step(name="vite build", args=[*npm, "build"], workdir=folder))
    steps.append(Step(name="pytest", args=["pytest"]))
    return steps
