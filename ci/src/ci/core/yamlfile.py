"""YAML files: fast read-only parsing, exact in-place scalar edits, round-trip YAML (comments,
order and quoting preserved) and crash-safe file writes.

Reading and the common edit use PyYAML's libyaml bindings; ruamel.yaml (a slower import and
parser) is loaded only for an edit the in-place splice cannot do, e.g. adding a missing key.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from ruamel.yaml import YAML

# libyaml when PyYAML was built with it (its wheels are), else the pure-Python classes.
SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlFileError(ValueError):
    """A YAML file is missing, unparsable or has the wrong shape; the message names the file."""


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise YamlFileError(f"{path}: file not found") from exc


def read_data(path: Path) -> Any:
    """Plain Python data of `path` (read-only: nothing of the formatting is kept)."""
    return parse(path, read_text(path))


def parse(path: Path, text: str) -> Any:
    try:
        return yaml.load(text, Loader=SAFE_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise YamlFileError(f"{path}: invalid YAML: {exc}") from exc


def _scalar(style: str | None, value: str) -> str:
    """`value` written in the quoting style the file used (libyaml reports plain as ""); plain
    only when it reads back as the same string."""
    if style == "'":
        return "'" + value.replace("'", "''") + "'"
    if not style and value and yaml.load(value, Loader=SAFE_LOADER) == value:  # noqa: S506
        return value
    return json.dumps(value)  # a JSON string is a valid YAML double-quoted scalar


def splice_scalars(
    path: Path, text: str, mapping: Sequence[str], values: Mapping[str, str]
) -> str | None:
    """`text` with the scalars `values` (key -> new value) of the mapping at `mapping` replaced
    in place, every other byte unchanged; None when a key is missing or not a plain scalar (the
    caller then edits with ruamel.yaml). The result is parsed back and checked.
    """
    try:
        node = yaml.compose(text, Loader=SAFE_LOADER)
    except yaml.YAMLError as exc:
        raise YamlFileError(f"{path}: invalid YAML: {exc}") from exc
    for key in mapping:
        node = _child(node, key)
        if not isinstance(node, yaml.MappingNode):
            return None
    spans = []
    for key, value in values.items():
        scalar = _child(node, key)
        if not isinstance(scalar, yaml.ScalarNode) or scalar.style not in (None, "", "'", '"'):
            return None
        start, end = scalar.start_mark.index, scalar.end_mark.index
        new = _scalar(scalar.style, value)
        spans.append((start, end, new if start < end else " " + new))
    edited = text
    for start, end, new in sorted(spans, reverse=True):
        edited = edited[:start] + new + edited[end:]
    return edited if _only_changed(path, text, edited, mapping, values) else None


def _child(node: Any, key: str) -> Any:
    if not isinstance(node, yaml.MappingNode):
        return None
    found = [value for name, value in node.value if getattr(name, "value", None) == key]
    return found[0] if len(found) == 1 else None


def _only_changed(
    path: Path, before: str, after: str, mapping: Sequence[str], values: Mapping[str, str]
) -> bool:
    """True when `after` reads as `before` with exactly `values` set under `mapping`."""
    expected, actual = parse(path, before), parse(path, after)
    target = expected
    for key in mapping:
        target = target[key]
    target.update(values)
    return bool(expected == actual)


def round_trip_yaml() -> YAML:
    from ruamel.yaml import YAML

    rt = YAML(typ="rt")
    rt.preserve_quotes = True
    # Keep the project's style: block lists indented under their key, long lines left alone.
    rt.indent(mapping=2, sequence=4, offset=2)
    rt.width = 4096
    return rt


def load(path: Path) -> Any:
    """Load `path` keeping comments and formatting so a later dump changes only what was edited."""
    return loads(path, read_text(path))


def loads(path: Path, text: str) -> Any:
    """`load` of `text`, the content of `path` (named in errors)."""
    from ruamel.yaml.error import YAMLError

    try:
        return round_trip_yaml().load(text)
    except YAMLError as exc:
        raise YamlFileError(f"{path}: invalid YAML: {exc}") from exc


def dump(data: Any) -> str:
    buffer = io.StringIO()
    round_trip_yaml().dump(data, buffer)
    return buffer.getvalue()


def atomic_write(path: Path, text: str) -> None:
    """Write `text` to `path` so readers see the old or the new content, never a partial file.

    Temp file in the same directory (same filesystem, so the rename is atomic), fsync of the data,
    os.replace, then fsync of the directory so the rename itself survives a crash.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
