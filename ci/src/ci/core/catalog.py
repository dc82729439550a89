"""The service catalog: every `services/<name>/service.yaml`, validated against one schema.

A folder under `services/` with a `service.yaml` is a service; a folder without one is a
library that services may name in `uses`. Errors name the file and the field, and all of them
are reported at once so one run shows everything that is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

SERVICES_DIR = "services"
SERVICE_FILE = "service.yaml"
# libyaml's safe loader (in PyYAML's wheels) parses ~10x faster than the pure-Python one, which
# was most of the plan's time with a thousand services; read-only parsing needs nothing more.
SAFE_LOADER: type[yaml.SafeLoader] | type[yaml.CSafeLoader] = getattr(
    yaml, "CSafeLoader", yaml.SafeLoader
)
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")

Command = Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
UrlPath = Annotated[str, Field(pattern=r"^/[^\s]*$")]


class CatalogError(ValueError):
    """One or more service.yaml files are invalid; `problems` holds one line per finding."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid service catalog:\n" + "\n".join(f"  {p}" for p in problems))


def _dns_label(value: str) -> str:
    if not DNS_LABEL.match(value):
        raise ValueError(f"{value!r} is not a DNS-1123 label (lowercase letters, digits, '-')")
    return value


def _unique(values: list[str]) -> list[str]:
    duplicates = sorted({v for v in values if values.count(v) > 1})
    if duplicates:
        raise ValueError(f"duplicate entries: {', '.join(duplicates)}")
    return values


class Worker(BaseModel):
    """An extra long-running process started from the service's image."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    run: Command

    _check_name = field_validator("name")(_dns_label)


class Service(BaseModel):
    """One deployable service as described by its service.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: Literal["python", "node"]
    description: Annotated[str, Field(min_length=1)]
    port: Annotated[int, Field(ge=1, le=65535)]
    health: UrlPath
    ready: UrlPath
    route: UrlPath
    needs: list[Literal["postgres", "redis"]] = []
    uses: list[str] = []
    run: Command
    migrate: Command | None = None
    workers: list[Worker] = []

    _check_name = field_validator("name")(_dns_label)
    _check_needs = field_validator("needs")(_unique)
    _check_uses = field_validator("uses")(_unique)

    @property
    def folder(self) -> str:
        return f"{SERVICES_DIR}/{self.name}"


class Catalog(BaseModel):
    """All services (sorted by name) and the in-repo libraries they may use."""

    model_config = ConfigDict(frozen=True)

    services: tuple[Service, ...]
    libraries: frozenset[str]

    def names(self) -> list[str]:
        return [s.name for s in self.services]

    def get(self, name: str) -> Service:
        for service in self.services:
            if service.name == name:
                return service
        known = ", ".join(self.names()) or "none"
        raise KeyError(f"unknown service {name!r} (known: {known})")

    def users_of(self, library: str) -> list[Service]:
        return [s for s in self.services if library in s.uses]


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(document)"


def parse_service(path: str, text: str) -> tuple[Service | None, list[str]]:
    """Parse one service.yaml; returns the service or the problems, each naming path and field."""
    try:
        data = yaml.load(text, Loader=SAFE_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        return None, [f"{path}: not valid YAML: {exc}"]
    if not isinstance(data, dict):
        return None, [f"{path}: expected a mapping of fields, got {type(data).__name__}"]
    try:
        service = Service.model_validate(data)
    except ValidationError as exc:
        return None, [
            f"{path}: field '{_location(err['loc'])}': {err['msg']}" for err in exc.errors()
        ]
    folder = path.split("/")[-2] if path.count("/") >= 1 else ""
    if service.name != folder:
        return None, [f"{path}: field 'name': {service.name!r} must equal the folder {folder!r}"]
    return service, []


def build_catalog(service_files: Mapping[str, str], folders: set[str]) -> Catalog:
    """Validate every service file (path -> text) against the folders that exist under services/.

    `folders` are the folder names directly under services/; those without a service file are
    libraries.
    """
    problems: list[str] = []
    services: list[Service] = []
    for path in sorted(service_files):
        service, found = parse_service(path, service_files[path])
        problems.extend(found)
        if service is not None:
            services.append(service)
    service_names = {s.name for s in services} | {p.split("/")[-2] for p in service_files}
    libraries = frozenset(folders - service_names)
    for service in services:
        for index, library in enumerate(service.uses):
            if library not in libraries:
                known = ", ".join(sorted(libraries)) or "none"
                problems.append(
                    f"{service.folder}/{SERVICE_FILE}: field 'uses.{index}': {library!r} is not "
                    f"a library folder under {SERVICES_DIR}/ (libraries: {known})"
                )
    if problems:
        raise CatalogError(problems)
    return Catalog(services=tuple(sorted(services, key=lambda s: s.name)), libraries=libraries)


def load_catalog(root: Path) -> Catalog:
    """Load the catalog of the repository checked out at `root`."""
    base = root / SERVICES_DIR
    if not base.is_dir():
        raise CatalogError([f"{SERVICES_DIR}/: folder not found under {root}"])
    folders = {p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")}
    files: dict[str, str] = {}
    for name in sorted(folders):
        path = base / name / SERVICE_FILE
        if path.is_file():
            files[f"{SERVICES_DIR}/{name}/{SERVICE_FILE}"] = _read(path, root)
    return build_catalog(files, folders)


def _read(path: Path, root: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError([f"{path.relative_to(root)}: cannot be read: {exc}"]) from exc


def catalog_json(catalog: Catalog) -> str:
    """The catalog as JSON: what `dagger call services` prints."""
    return Catalog.model_dump_json(catalog, indent=2)
