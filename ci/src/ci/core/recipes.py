"""What each stage runs for a service, as data: build context, commands, environment.

The Dagger layer turns these into containers; keeping them here makes them testable and keeps
the toolchain of a service kind in one place.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from ci.core.affected import Plan
from ci.core.catalog import SERVICES_DIR, Catalog, Service

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
REPO_TESTS_DIR = "tests"


class Step(BaseModel):
    """One command of a stage, with a name for the logs."""

    model_config = ConfigDict(frozen=True)

    name: str
    args: list[str]


def dockerfile(service: Service) -> str:
    return f"{service.folder}/Dockerfile"


def build_context(service: Service) -> list[str]:
    """Include patterns of the build context: the service, its libraries and the root files."""
    folders = [service.folder, *(f"{SERVICES_DIR}/{lib}" for lib in service.uses)]
    return [*(f"{folder}/" for folder in folders), *ROOT_CONTEXT_FILES]


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


def mypy_path(service: Service) -> str:
    """MYPYPATH for one service: its src, its libraries' src and the repo test harness."""
    roots = [f"{service.folder}/src", *(f"{SERVICES_DIR}/{lib}/src" for lib in service.uses)]
    return ":".join([*roots, "tests"])


def lint_steps(service: Service) -> list[Step]:
    if service.kind == "node":
        return [
            Step(name="eslint", args=["npm", "run", "lint"]),
            Step(name="typecheck", args=["npm", "run", "typecheck"]),
        ]
    folder = service.folder
    return [
        Step(name="ruff check", args=["ruff", "check", folder]),
        Step(name="ruff format", args=["ruff", "format", "--check", folder]),
        Step(name="mypy", args=["mypy", f"{folder}/src", f"{folder}/tests"]),
    ]


def step_for_tests(service: Service) -> Step:
    junit = f"{JUNIT_DIR}/{JUNIT_FILE}"
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
        )
    return Step(name="pytest", args=["pytest", service.folder, f"--junitxml={junit}"])


def repo_test_paths(catalog: Catalog) -> list[str]:
    """tests/ and every in-repo library (their suites belong to no service)."""
    return [REPO_TESTS_DIR, *(f"{SERVICES_DIR}/{lib}" for lib in sorted(catalog.libraries))]


def step_for_repo_tests(catalog: Catalog) -> Step:
    """pytest over the repository-level suite. It starts its own PostgreSQL/Redis through the
    harness (some tests stop and restart them), so it needs the toolchain's server binaries and
    no TEST_DATABASE_URL / TEST_REDIS_URL."""
    junit = f"{JUNIT_DIR}/{JUNIT_FILE}"
    return Step(name="pytest", args=["pytest", *repo_test_paths(catalog), f"--junitxml={junit}"])


def runs_repo_tests(plan: Plan) -> bool:
    """The repository suite runs whenever anything changed or everything was asked for; a plan
    with no change and no service checks nothing."""
    return bool(plan.changed_files or plan.services)


def env_for_tests(service: Service) -> dict[str, str]:
    """Environment for the tests: URLs of the backing services the service needs."""
    env: dict[str, str] = {}
    if "postgres" in service.needs:
        env["TEST_DATABASE_URL"] = TEST_DATABASE_URL
    if "redis" in service.needs:
        env["TEST_REDIS_URL"] = TEST_REDIS_URL
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
