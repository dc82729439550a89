"""The services the local stack runs, read from their service.yaml through the ci catalog."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ci.core.catalog import CatalogError, load_catalog  # the pipeline's own reader and checks
from ci.localapp.process import StackError


@dataclass(frozen=True)
class Worker:
    name: str
    run: tuple[str, ...]


@dataclass(frozen=True)
class StackService:
    """What the stack needs to know of one service (a subset of its service.yaml)."""

    name: str
    directory: Path
    ready: str
    route: str
    needs: frozenset[str]
    run: tuple[str, ...]
    migrate: tuple[str, ...] | None
    workers: tuple[Worker, ...]

    @property
    def database_name(self) -> str:
        return self.name.replace("-", "_")


def load_services(repo_root: Path) -> list[StackService]:
    """Every Python service with a `run` command, in name order."""
    try:
        catalog = load_catalog(repo_root)
    except CatalogError as exc:
        raise StackError(str(exc)) from exc
    services = [
        StackService(
            name=entry.name,
            directory=repo_root / "services" / entry.name,
            ready=entry.ready,
            route=entry.route,
            needs=frozenset(entry.needs),
            run=tuple(entry.run),
            migrate=tuple(entry.migrate) if entry.migrate else None,
            workers=tuple(Worker(w.name, tuple(w.run)) for w in entry.workers),
        )
        for entry in catalog.services
        if entry.kind == "python"
    ]
    return sorted(services, key=lambda s: s.name)
