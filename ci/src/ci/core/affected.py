"""Which services a set of changed paths affects, and why.

Rules, applied to every changed path:
- `services/<service>/...`           -> that service
- `services/<library>/...`           -> every service whose service.yaml `uses` the library
- `charts/<service>/...`             -> that service (its deployment changed)
- `charts/<library chart>/...`       -> every service (all charts render its templates)
- `ci/...`, `.github/...`, root tooling (pyproject.toml, uv.lock, Makefile, dagger.json, .ci/,
  tests/harness/)                    -> every service (how everything is built or tested changed)
Anything else (docs, argocd/, k3s/, other charts such as postgres) affects no service image.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict

from ci.core.catalog import SAFE_LOADER, SERVICES_DIR, Catalog

CHARTS_DIR = "charts"
# Paths whose change affects every service: directories end with "/".
TOOLING_PATHS = (
    "ci/",
    ".github/",
    ".ci/",
    "tests/harness/",
    "pyproject.toml",
    "uv.lock",
    "Makefile",
    "dagger.json",
)

Cause = Literal["service", "library", "chart", "library-chart", "tooling", "requested"]


class Reason(BaseModel):
    """Why a service is affected: the rule that fired and the path (folder or file) it matched."""

    model_config = ConfigDict(frozen=True)

    cause: Cause
    path: str


class AffectedService(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    kind: str
    reasons: list[Reason]


class Plan(BaseModel):
    """The services to lint, test, build and scan, each with its reasons."""

    model_config = ConfigDict(frozen=True)

    base: str | None
    head: str | None
    changed_files: list[str]
    services: list[AffectedService]
    unaffected: list[str]

    def names(self) -> list[str]:
        return [s.name for s in self.services]


def is_library_chart(chart_yaml: str) -> bool:
    """True when a Chart.yaml declares `type: library` (templates shared by other charts)."""
    try:
        data = yaml.load(chart_yaml, Loader=SAFE_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError:
        return False
    return isinstance(data, dict) and data.get("type") == "library"


def library_charts(root: Path) -> set[str]:
    """Names of the library charts under `charts/` of the checkout at `root`."""
    return {
        chart.parent.name
        for chart in sorted((root / CHARTS_DIR).glob("*/Chart.yaml"))
        if is_library_chart(chart.read_text())
    }


def tooling_match(path: str) -> str | None:
    for entry in TOOLING_PATHS:
        if entry.endswith("/") and path.startswith(entry):
            return entry.rstrip("/")
        if path == entry:
            return entry
    return None


def _decision_key(path: str) -> str:
    """Paths with the same key get the same reasons: every rule (tooling folders of one or two
    levels, services/<x>/, charts/<x>/) looks at most at the first two segments of a path that
    has a third one; shorter paths (root files, files directly in a folder) stand for themselves.
    """
    parts = path.split("/", 2)
    return f"{parts[0]}/{parts[1]}" if len(parts) == 3 else path


def reasons_for_path(path: str, catalog: Catalog, library_charts: set[str]) -> dict[str, Reason]:
    """service name -> reason, for one changed path."""
    everyone = catalog.names()
    tooling = tooling_match(path)
    if tooling is not None:
        return {name: Reason(cause="tooling", path=tooling) for name in everyone}
    parts = path.split("/")
    if len(parts) < 3:  # a file directly in services/ or charts/ belongs to no folder
        return {}
    top, folder = parts[0], parts[1]
    folder_path = f"{top}/{folder}"
    if top == SERVICES_DIR:
        if folder in everyone:
            return {folder: Reason(cause="service", path=folder_path)}
        if folder in catalog.libraries:
            return {
                s.name: Reason(cause="library", path=folder_path) for s in catalog.users_of(folder)
            }
    if top == CHARTS_DIR:
        if folder in library_charts:
            return {name: Reason(cause="library-chart", path=folder_path) for name in everyone}
        if folder in everyone:
            return {folder: Reason(cause="chart", path=folder_path)}
    return {}


def affected(
    catalog: Catalog,
    changed: Iterable[str],
    library_charts: Iterable[str] = (),
    *,
    everything: bool = False,
    base: str | None = None,
    head: str | None = None,
) -> Plan:
    """The plan for `changed` paths; `everything` selects every service (reason "requested")."""
    charts = set(library_charts)
    changed_files = sorted(set(changed))
    reasons: dict[str, list[Reason]] = {}
    if everything:
        for name in catalog.names():
            reasons[name] = [Reason(cause="requested", path="--all")]
    # Decide once per folder, not once per path: 100,000 changed paths fall into a few thousand
    # folders, and each decision walks the catalog.
    decided: set[str] = set()
    for path in changed_files:
        key = _decision_key(path)
        if key in decided:
            continue
        decided.add(key)
        for name, reason in reasons_for_path(path, catalog, charts).items():
            found = reasons.setdefault(name, [])
            if reason not in found:
                found.append(reason)
    services = [
        AffectedService(name=s.name, kind=s.kind, reasons=reasons[s.name])
        for s in catalog.services
        if s.name in reasons
    ]
    unaffected = [name for name in catalog.names() if name not in reasons]
    return Plan(
        base=base,
        head=head,
        changed_files=changed_files,
        services=services,
        unaffected=unaffected,
    )
