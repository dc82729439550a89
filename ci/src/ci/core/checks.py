"""The checks `dagger check` runs and `make check` runs on the host, by the same names.

One check per stage of every service of the catalog (`lint-backend`, `test-auth`,
`scan-frontend`, ...) plus the repository suite (`test-repository`) and the generated files
(`generated-up-to-date`). The engine registers one Dagger function per name (ci.main); host
mode selects its jobs by the same names and patterns (`python -m ci.check --check 'lint-*'`).

The module's runtime loads `ci/` (dagger.json's source), not `services/`: the catalog's names
reach it through a generated file, ci/src/ci/service_names.py (`make generate`; stale, it fails
`make lint` and the `generated-up-to-date` check).

No `import dagger`: the host, the engine and the tests share this code.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ci.core.catalog import load_catalog

NAMES_FILE = "ci/src/ci/service_names.py"
STAGES = ("lint", "test", "scan")
REPOSITORY = "test-repository"
GENERATED = "generated-up-to-date"
# What each stage covers, for the function's description (`dagger check -l`).
STAGE_DOCS = {
    "lint": "Lint {service}: ruff, ruff format, mypy --strict (Python) or eslint, tsc (node).",
    "test": "{service}'s own suite, with the PostgreSQL/Redis its service.yaml needs.",
    "scan": "Build {service}'s image and scan it: Trivy (HIGH and above fail), hadolint, SBOM.",
}


@dataclass(frozen=True)
class ServiceCheck:
    """One stage of one service as a check."""

    stage: str
    service: str

    @property
    def name(self) -> str:
        """The CLI name: `dagger check lint-data-processor`."""
        return f"{self.stage}-{self.service}"

    @property
    def python_name(self) -> str:
        """The method name the SDK turns into the CLI name (snake case to kebab case)."""
        return self.name.replace("-", "_")

    @property
    def doc(self) -> str:
        return STAGE_DOCS[self.stage].format(service=self.service)


def service_checks(services: Iterable[str]) -> list[ServiceCheck]:
    """Every stage of every service, stage by stage."""
    names = sorted(services)
    return [ServiceCheck(stage, service) for stage in STAGES for service in names]


def all_names(services: Iterable[str]) -> list[str]:
    """Every check's CLI name: the services' stages, the repository suite, generated files."""
    return [c.name for c in service_checks(services)] + [REPOSITORY, GENERATED]


def select(patterns: Sequence[str], names: Sequence[str]) -> list[str]:
    """The names matching any pattern (`lint-*`, as `dagger check` takes them); every name
    when there is no pattern. A pattern that matches nothing is a ValueError naming it."""
    if not patterns:
        return list(names)
    unmatched = [p for p in patterns if not any(fnmatch.fnmatchcase(n, p) for n in names)]
    if unmatched:
        raise ValueError(
            f"--check {', '.join(unmatched)}: matches no check (known: {', '.join(names)})"
        )
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]


def service_names_module(root: Path) -> dict[str, str]:
    """The generated module naming the catalog's services (ruff-formatted as written)."""
    names = "".join(f'    "{name}",\n' for name in load_catalog(root).names())
    text = (
        f"# Generated from services/*/service.yaml by `make generate` ({__name__}): do not edit.\n"
        '"""The catalog\'s services, for the Dagger module\'s per-service checks."""\n\n'
        f"SERVICE_NAMES: tuple[str, ...] = (\n{names})\n"
    )
    return {NAMES_FILE: text}
