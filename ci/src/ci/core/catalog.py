"""The service catalog: every `services/<name>/service.yaml`, validated against one schema.

A folder under `services/` with a `service.yaml` is a service; a folder without one is a
library that services may name in `uses`. Errors name the file and the field, and all of them
are reported at once so one run shows everything that is wrong.

The plan path (this module and ci.core.affected) uses msgspec Structs, not pydantic like the rest
of the codebase, because importing pydantic alone took 0.19 s of `python -m ci.plan`'s 0.6 s over
1,000 services on our 2-core machine and importing msgspec takes ~0.05 s there.
"""

from __future__ import annotations

import os
import re
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import msgspec
import yaml
from msgspec import Meta, Struct

SERVICES_DIR = "services"
SERVICE_FILE = "service.yaml"
# libyaml's safe loader (in PyYAML's wheels) parses ~10x faster than the pure-Python one, which
# was most of the plan's time with a thousand services; read-only parsing needs nothing more.
SAFE_LOADER: type[yaml.SafeLoader] | type[yaml.CSafeLoader] = getattr(
    yaml, "CSafeLoader", yaml.SafeLoader
)
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")

NonEmpty = Annotated[str, Meta(min_length=1)]
Command = Annotated[list[NonEmpty], Meta(min_length=1)]
UrlPath = Annotated[str, Meta(pattern=r"^/[^\s]*$")]
Port = Annotated[int, Meta(ge=1, le=65535)]
Location = tuple[int | str, ...]


class CatalogError(ValueError):
    """One or more service.yaml files are invalid; `problems` holds one line per finding."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid service catalog:\n" + "\n".join(f"  {p}" for p in problems))


class Worker(Struct, frozen=True, forbid_unknown_fields=True):
    """An extra long-running process started from the service's image."""

    name: str
    run: Command


class Service(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One deployable service as described by its service.yaml (fields in the JSON's order)."""

    name: str
    kind: Literal["python", "node"]
    description: NonEmpty
    port: Port
    health: UrlPath
    ready: UrlPath
    route: UrlPath
    needs: list[Literal["postgres", "redis"]] = []
    uses: list[str] = []
    run: Command
    migrate: Command | None = None
    workers: list[Worker] = []

    @property
    def folder(self) -> str:
        return f"{SERVICES_DIR}/{self.name}"


class Catalog(Struct, frozen=True):
    """All services (sorted by name) and the in-repo libraries they may use."""

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


def _location(loc: Location) -> str:
    return ".".join(str(part) for part in loc) or "(document)"


def schema_problems(value: object, schema: Any, loc: Location = ()) -> list[tuple[Location, str]]:
    """(location, message) of every schema violation in `value`, not only the first.

    msgspec stops at the first error; on failure this walks down into the fields of a Struct and
    the items of a list so that each wrong field is named. Valid input costs one msgspec.convert.
    """
    try:
        msgspec.convert(value, schema)
    except msgspec.ValidationError as exc:
        message = str(exc).split(" - at `$", 1)[0]
    else:
        return []
    schema = _without_none(_unannotated(schema))
    found: list[tuple[Location, str]] = []
    if isinstance(schema, type) and issubclass(schema, Struct) and isinstance(value, dict):
        found = _field_problems(value, schema, loc)
    elif get_origin(schema) is list and isinstance(value, list):
        (item,) = get_args(schema)
        found = [p for i, v in enumerate(value) for p in schema_problems(v, item, (*loc, i))]
    return found or [(loc, message)]


def _field_problems(
    value: dict[Any, Any], struct: type[Struct], loc: Location
) -> list[tuple[Location, str]]:
    fields = msgspec.structs.fields(struct)
    found: list[tuple[Location, str]] = []
    for field in fields:
        if field.encode_name in value:
            found += schema_problems(value[field.encode_name], field.type, (*loc, field.name))
        elif field.required:
            found.append(((*loc, field.name), "Field required"))
    known = {field.encode_name for field in fields}
    found += [((*loc, key), "unknown field") for key in value if key not in known]
    return found


def _unannotated(schema: Any) -> Any:
    return get_args(schema)[0] if get_origin(schema) is Annotated else schema


def _without_none(schema: Any) -> Any:
    """`X | None` -> X (the value is not None when it failed to validate)."""
    if get_origin(schema) in (Union, types.UnionType):
        arms = [arm for arm in get_args(schema) if arm is not type(None)]
        if len(arms) == 1:
            return _unannotated(arms[0])
    return schema


def rule_problems(data: Mapping[str, Any], wrong: list[Location]) -> list[tuple[Location, str]]:
    """What the schema cannot say: names are DNS-1123 labels, `needs`/`uses` list each entry
    once. Checked where the schema found nothing `wrong` (neither at, above nor below)."""
    found: list[tuple[Location, str]] = []
    names: list[tuple[Location, Any]] = [(("name",), data.get("name"))]
    if _clear(("workers",), wrong, below=False):
        workers = enumerate(data.get("workers", []))
        names += [
            (("workers", i, "name"), w.get("name")) for i, w in workers if isinstance(w, dict)
        ]
    for loc, name in names:
        if _clear(loc, wrong) and not DNS_LABEL.match(name):
            found.append(
                (loc, f"{name!r} is not a DNS-1123 label (lowercase letters, digits, '-')")
            )
    for field in ("needs", "uses"):
        values = data.get(field, []) if _clear((field,), wrong) else []
        duplicates = sorted({v for v in values if values.count(v) > 1})
        if duplicates:
            found.append(((field,), f"duplicate entries: {', '.join(duplicates)}"))
    return found


def _clear(loc: Location, wrong: list[Location], *, below: bool = True) -> bool:
    """No wrong location at `loc` or above it (and, with `below`, none under it either)."""
    return not any(w == loc[: len(w)] or (below and loc == w[: len(loc)]) for w in wrong)


def _convert(data: dict[Any, Any]) -> Service | None:
    try:
        return msgspec.convert(data, Service)
    except msgspec.ValidationError:
        return None


def parse_service(path: str, text: str) -> tuple[Service | None, list[str]]:
    """Parse one service.yaml; returns the service or the problems, each naming path and field."""
    try:
        data = yaml.load(text, Loader=SAFE_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        return None, [f"{path}: not valid YAML: {exc}"]
    if not isinstance(data, dict):
        return None, [f"{path}: expected a mapping of fields, got {type(data).__name__}"]
    service = _convert(data)
    found = [] if service is not None else schema_problems(data, Service)  # >= 1 if not converted
    found += rule_problems(data, [loc for loc, _ in found])
    if service is None or found:
        return None, [f"{path}: field '{_location(loc)}': {message}" for loc, message in found]
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
    try:
        entries = list(os.scandir(root / SERVICES_DIR))
    except (FileNotFoundError, NotADirectoryError):
        raise CatalogError([f"{SERVICES_DIR}/: folder not found under {root}"]) from None
    folders = {e.name for e in entries if e.is_dir() and not e.name.startswith(".")}
    files: dict[str, str] = {}
    for name in sorted(folders):
        path = f"{SERVICES_DIR}/{name}/{SERVICE_FILE}"
        text = _read(root, path)
        if text is not None:
            files[path] = text
    return build_catalog(files, folders)


def _read(root: Path, path: str) -> str | None:
    """The text of `path` under `root`, None when there is no such file (a library folder)."""
    try:
        with open(root / path, encoding="utf-8") as file:
            return file.read()
    except (FileNotFoundError, IsADirectoryError):
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError([f"{path}: cannot be read: {exc}"]) from exc


def catalog_json(catalog: Catalog) -> str:
    """The catalog as JSON: what `dagger call services` prints (libraries sorted)."""
    return indented_json(catalog)


def indented_json(value: object) -> str:
    """`value` as JSON indented by two spaces, sets sorted, fields in declaration order."""
    return msgspec.json.format(msgspec.json.encode(value, order="deterministic"), indent=2).decode()
