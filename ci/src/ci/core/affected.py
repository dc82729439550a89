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

from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from msgspec import Struct

from ci.core.catalog import SAFE_LOADER, SERVICES_DIR, Catalog, indented_json

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


class Reason(Struct, frozen=True):
    """Why a service is affected: the rule that fired and the path (folder or file) it matched."""

    cause: Cause
    path: str


class AffectedService(Struct, frozen=True):
    name: str
    kind: str
    reasons: list[Reason]


class Plan(Struct, frozen=True):
    """The services to lint, test, build and scan, each with its reasons."""

    base: str | None
    head: str | None
    changed_files: list[str]
    services: list[AffectedService]
    unaffected: list[str]

    def names(self) -> list[str]:
        return [s.name for s in self.services]


def plan_json(plan: Plan) -> str:
    """The plan as JSON: what `python -m ci.plan` and `dagger call plan` print."""
    return indented_json(plan)


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


def decision_keys(paths: Sequence[str]) -> Iterator[str]:
    """The distinct decisions that sorted, unique `paths` need, in order.

    Every rule (tooling folders of one or two levels, services/<x>/, charts/<x>/) looks at most at
    the first two segments of a path that has a third one: such a path stands for its folder
    "<top>/<folder>/". Shorter paths (root files, files directly in a folder) stand for themselves.
    In sorted order a folder's paths are contiguous, so a binary search jumps over them: 100,000
    paths in 1,000 folders take 1,000 steps, not 100,000 splits.
    """
    i = 0
    while i < len(paths):
        path = paths[i]
        first = path.find("/")
        second = path.find("/", first + 1) if first >= 0 else -1
        if second < 0:
            yield path
            i += 1
            continue
        folder = path[: second + 1]
        yield folder
        # "0" is the character after "/": every path under the folder sorts before folder[:-1]+"0"
        i = bisect_left(paths, f"{folder[:-1]}0", i + 1)


@dataclass(frozen=True)
class Rules:
    """The catalog indexed once for the decisions: service names, library -> its users."""

    services: frozenset[str]
    libraries: Mapping[str, list[str]]
    library_charts: frozenset[str]
    everyone: list[str]

    @classmethod
    def of(cls, catalog: Catalog, library_charts: Iterable[str] = ()) -> Rules:
        users: dict[str, list[str]] = {library: [] for library in catalog.libraries}
        for service in catalog.services:
            for library in service.uses:
                if library in users:
                    users[library].append(service.name)
        names = catalog.names()
        return cls(frozenset(names), users, frozenset(library_charts), names)

    def reasons(self, key: str) -> dict[str, Reason]:
        """service name -> reason, for one decision key (a path or a "<top>/<folder>/")."""
        tooling = tooling_match(key)
        if tooling is not None:
            return dict.fromkeys(self.everyone, Reason(cause="tooling", path=tooling))
        parts = key.split("/")
        if len(parts) < 3:  # a file directly in services/ or charts/ belongs to no folder
            return {}
        top, folder = parts[0], parts[1]
        folder_path = f"{top}/{folder}"
        if top == SERVICES_DIR:
            if folder in self.services:
                return {folder: Reason(cause="service", path=folder_path)}
            if folder in self.libraries:
                reason = Reason(cause="library", path=folder_path)
                return dict.fromkeys(self.libraries[folder], reason)
        if top == CHARTS_DIR:
            if folder in self.library_charts:
                return dict.fromkeys(self.everyone, Reason(cause="library-chart", path=folder_path))
            if folder in self.services:
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
    # git prints paths sorted and once: sorting sorted input is one linear pass, and a dict keeps
    # that order while it drops duplicates (a set would lose it and cost a full sort).
    changed_files = list(dict.fromkeys(sorted(changed)))
    rules = Rules.of(catalog, library_charts)
    reasons: dict[str, list[Reason]] = {}
    if everything:
        for name in rules.everyone:
            reasons[name] = [Reason(cause="requested", path="--all")]
    for key in decision_keys(changed_files):
        for name, reason in rules.reasons(key).items():
            found = reasons.setdefault(name, [])
            if reason not in found:
                found.append(reason)
    services = [
        AffectedService(name=s.name, kind=s.kind, reasons=reasons[s.name])
        for s in catalog.services
        if s.name in reasons
    ]
    unaffected = [name for name in rules.everyone if name not in reasons]
    return Plan(
        base=base,
        head=head,
        changed_files=changed_files,
        services=services,
        unaffected=unaffected,
    )
