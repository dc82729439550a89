"""Files derived from others, and the one registry of their generators.

A generator maps the repository root to `{relative path: content}`. `python -m ci.generate`
writes them (`make generate`), `--check` lists the stale ones and fails (`make lint`), and the
Dagger module's `generate` function runs the same command in the toolchain container and
returns the difference as a Changeset (`dagger generate`). To add one: write a function
`Path -> Mapping[str, str]` and list a `Generator` in `registry()`.

No `import dagger`: the host, the engine and the tests share this code.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ci.core.catalog import load_catalog
from ci.core.checks import service_names_module
from ci.core.dockerfiles import dockerfiles
from ci.core.toolversions import UV_REQUIREMENTS

Render = Callable[[Path], Mapping[str, str]]
UV_EXPORT_TIMEOUT_SECONDS = 120.0
FILE_MODE = 0o644  # as git checks the files out (a temporary file starts at 0600)
REQUIREMENTS_HEADER = (
    "# Generated from uv.lock by `make generate` (ci/src/ci/core/generated.py): do not edit.\n"
)


class GenerateError(RuntimeError):
    """A generator could not produce its files (the message names the generator and file)."""


@dataclass(frozen=True)
class Generator:
    """One kind of derived file: a name for the CLI, what it reads, how it renders."""

    name: str
    description: str
    inputs: tuple[str, ...]  # glob patterns (repo-relative) the renderer reads
    render: Render


def uv_binary() -> str:
    """uv beside this interpreter (the repo's .venv) or on PATH (the engine's toolchain)."""
    beside = Path(sys.executable).parent / "uv"
    found = str(beside) if beside.exists() else shutil.which("uv")
    if found is None:
        raise GenerateError("requirements: no `uv` beside the interpreter nor on PATH")
    return found


def python_services(root: Path) -> list[str]:
    """The Python services of the catalog: each image installs its own requirements.txt."""
    return [s.name for s in load_catalog(root).services if s.kind == "python"]


def requirements_of(root: Path, service: str) -> str:
    """`uv export` of one service's locked, hashed dependencies (no dev, no workspace)."""
    args = [uv_binary(), "export", "--quiet", "--frozen", "--package", service, "--no-dev"]
    args += ["--no-emit-workspace", "--format", "requirements.txt", "--no-header"]
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "UV_OFFLINE": "1"}
    done = subprocess.run(  # noqa: S603 - fixed executable, arguments are a list
        args,
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=UV_EXPORT_TIMEOUT_SECONDS,
        check=False,
    )
    if done.returncode != 0:
        raise GenerateError(f"services/{service}/requirements.txt: uv export: {done.stderr}")
    return REQUIREMENTS_HEADER + done.stdout


def requirements(root: Path) -> dict[str, str]:
    return {
        f"services/{name}/requirements.txt": requirements_of(root, name)
        for name in python_services(root)
    }


def uv_requirements(root: Path) -> dict[str, str]:
    """uv's own pin with the hash of every wheel uv.lock records (the dev group's `uv==`): the
    bootstrap of `make setup` and of the engine's toolchain, hash-checked by pip. One source,
    uv.lock, instead of a tag-only uv image."""
    lock = root / "uv.lock"
    try:
        packages = tomllib.loads(lock.read_text(encoding="utf-8")).get("package", [])
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise GenerateError(f"{UV_REQUIREMENTS}: cannot read {lock}: {exc}") from exc
    found = [p for p in packages if p.get("name") == "uv"]
    if len(found) != 1:
        raise GenerateError(f"{UV_REQUIREMENTS}: uv.lock holds {len(found)} `uv` packages, not 1")
    hashes = sorted(w["hash"] for w in found[0].get("wheels", []))
    if not hashes:
        raise GenerateError(f"{UV_REQUIREMENTS}: uv.lock records no wheel of uv")
    lines = [f"uv=={found[0]['version']}", *(f"    --hash={h}" for h in hashes)]
    return {UV_REQUIREMENTS: REQUIREMENTS_HEADER + " \\\n".join(lines) + "\n"}


def registry() -> tuple[Generator, ...]:
    """Every generator of the repository, in the order they run."""
    return (
        Generator(
            name="requirements",
            description="each Python service's requirements.txt, exported from uv.lock",
            inputs=("pyproject.toml", "uv.lock", "services/*/pyproject.toml", "services/*/*.yaml"),
            render=requirements,
        ),
        Generator(
            name="dockerfiles",
            description="each Python service's Dockerfile, from one template and its service.yaml",
            inputs=("services/*/service.yaml", "ci/src/ci/core/dockerfiles.py"),
            render=dockerfiles,
        ),
        Generator(
            name="service-names",
            description="the catalog's service names, for the Dagger module's per-service checks",
            inputs=("services/*/service.yaml", "ci/src/ci/core/checks.py"),
            render=service_names_module,
        ),
        Generator(
            name="uv-requirements",
            description="uv's hash-pinned bootstrap requirement, from uv.lock",
            inputs=("uv.lock",),
            render=uv_requirements,
        ),
    )


def select(names: Sequence[str] = ()) -> list[Generator]:
    """The named generators (all when none is named); an unknown name is a ValueError."""
    known = {g.name: g for g in registry()}
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ValueError(f"unknown generator {', '.join(unknown)} (known: {', '.join(known)})")
    return [g for g in known.values() if not names or g.name in names]


def render(root: Path, generators: Sequence[Generator]) -> dict[str, str]:
    """Every generated file's content; a path claimed by two generators is an error."""
    files: dict[str, str] = {}
    for generator in generators:
        for path, content in generator.render(root).items():
            if path in files:
                raise GenerateError(f"{path}: generated twice (second by {generator.name})")
            files[path] = content
    return files


def stale(root: Path, files: Mapping[str, str]) -> list[str]:
    """The paths whose file is missing or differs from what its generator renders."""
    return sorted(p for p, text in files.items() if _read(root / p) != text)


def write(root: Path, files: Mapping[str, str]) -> list[str]:
    """Write the stale files (each atomically: a reader never sees half a file)."""
    changed = stale(root, files)
    for path in changed:
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "w", dir=target.parent, prefix=f".{target.name}.", delete=False, encoding="utf-8"
        ) as out:
            out.write(files[path])
        os.chmod(out.name, FILE_MODE)
        os.replace(out.name, target)
    return changed


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
