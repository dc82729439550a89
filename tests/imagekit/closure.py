"""An image's dependency closure on the host, without Docker.

The Dockerfile's build stage is replayed into a venv (its own `python -m venv` and pip commands,
flags and all: `--require-hashes --no-deps`, then pip removed), cached under a directory keyed by
everything that build depends on; the source trees the Dockerfile copies are copied afresh for
every run. The runtime environment is the base image's, plus the Dockerfile's ENV with its image
paths pointing at those directories; nothing comes from the caller's environment or the dev venv.

What differs from the image, and why: the interpreter is the host's Python (python3.12 when the
host has one, else Debian's python3: the image's CPython 3.12 cannot be downloaded here), and pip
picks manylinux wheels where the Alpine image picks musllinux ones, from the same hashed pins.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from imagekit.recipe import Recipe, RecipeError, image_path_of

CACHE_ENV = "IMAGE_CLOSURE_CACHE"
# The PATH Docker gives a container (and the python images keep, /usr/local/bin first).
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BASE_ENV = {"PATH": BASE_PATH, "LANG": "C.UTF-8", "HOME": "/"}
# Interpreters every user can run (not a pyenv under /root); the image's version first.
INTERPRETERS = ("/usr/local/bin/python3.12", "/usr/bin/python3.12", "/usr/bin/python3")
BUILD_TIMEOUT = 900.0
_COMPLETE = ".closure-complete"


def cache_root(repo_root: Path) -> Path:
    """$IMAGE_CLOSURE_CACHE, else the git-ignored .cache/image-closures of the repository."""
    return Path(os.environ.get(CACHE_ENV) or repo_root / ".cache" / "image-closures")


def interpreter() -> Path:
    for candidate in INTERPRETERS:
        if os.access(candidate, os.X_OK):
            return Path(candidate)
    raise RecipeError(f"no Python for the closure venvs; looked for {', '.join(INTERPRETERS)}")


def reachable_by_anyone(path: Path) -> bool:
    """Every directory above `path` lets other users through (the image's user is not us)."""
    return all(p.stat().st_mode & stat.S_IXOTH for p in [path, *path.parents])


@dataclass(frozen=True)
class Closure:
    recipe: Recipe
    build_paths: dict[str, Path]  # build-stage image path -> host path (venvs, source trees)

    def runtime_paths(self) -> dict[str, Path]:
        """Runtime image path -> host path, through the runtime stage's COPY --from lines."""
        mapped: dict[str, Path] = {}
        for runtime, build in self.recipe.runtime.copies.items():
            host = image_path_of(build, self.build_paths)
            if host is None:
                raise RecipeError(f"{self.recipe.dockerfile}: COPY --from=build {build}: unknown")
            mapped[runtime] = host
        return mapped

    def environment(self) -> dict[str, str]:
        """The base image's environment with the Dockerfile's ENV applied, paths mapped."""
        env = dict(BASE_ENV)
        paths = self.runtime_paths()
        for name, value in self.recipe.runtime.env:
            expanded = re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), ""), value)
            env[name] = ":".join(_mapped(part, paths) for part in expanded.split(":"))
        return env


def _mapped(part: str, paths: Mapping[str, Path]) -> str:
    host = image_path_of(part, dict(paths)) if part.startswith("/") else None
    return str(host) if host is not None else part


def build_closure(recipe: Recipe, repo_root: Path, cache: Path, work: Path) -> Closure:
    """The venvs (cached) and source trees (copied into `work`) of `recipe`'s build stage."""
    name = recipe.dockerfile.parent.name
    venv_root = _cached_venvs(recipe, repo_root, cache, name)
    paths = {image: venv_root / image.strip("/").replace("/", "-") for image in recipe.venvs}
    for image_dir, sources in recipe.build.copied_trees.items():
        host = work / image_dir.strip("/").replace("/", "-")
        for source in sources:
            shutil.copytree(
                repo_root / source,
                host,
                dirs_exist_ok=True,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
            )
        paths[image_dir] = host
    return Closure(recipe, paths)


def _cache_key(recipe: Recipe, repo_root: Path, python: Path) -> str:
    digest = hashlib.sha256()
    version = subprocess.run(
        [python, "-c", "import sys; print(sys.version)"], capture_output=True, text=True, check=True
    ).stdout
    digest.update(f"{python}\n{version}\n{recipe.cache_key_material()}\n".encode())
    for image_path, source in sorted(recipe.build.copied_files.items()):
        digest.update(f"{image_path}={source}\n".encode())
        digest.update((repo_root / source).read_bytes())
    return digest.hexdigest()[:16]


def _cached_venvs(recipe: Recipe, repo_root: Path, cache: Path, name: str) -> Path:
    python = interpreter()
    root = cache / f"{name}-{_cache_key(recipe, repo_root, python)}"
    cache.mkdir(parents=True, exist_ok=True)
    cache.chmod(0o755)
    with _locked(cache / f"{name}.lock"):
        if not (root / _COMPLETE).exists():
            # Older builds of this image (another lock, another Dockerfile) and an interrupted
            # one: the cache holds one closure per image.
            for old in cache.glob(f"{name}-*"):
                if old.name.rsplit("-", 1)[0] == name:
                    shutil.rmtree(old, ignore_errors=True)
            root.mkdir(mode=0o755)
            _replay_build(recipe, repo_root, root, python)
            (root / _COMPLETE).touch()
    return root


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Concurrent test sessions (xdist, other worktrees' runs) build one venv, once."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _replay_build(recipe: Recipe, repo_root: Path, root: Path, python: Path) -> None:
    paths = {image: root / image.strip("/").replace("/", "-") for image in recipe.venvs}
    paths.update({image: repo_root / source for image, source in recipe.build.copied_files.items()})
    env = {**BASE_ENV, "HOME": os.environ.get("HOME", "/root"), **recipe.build.env}
    env.update({k: v for k, v in os.environ.items() if k.lower().endswith("_proxy")})
    for step in recipe.build.steps:
        argv = [_host_token(recipe, step.line, token, paths) for token in step.argv]
        if step.creates_venv:
            argv[0] = str(python)
        result = subprocess.run(
            argv, env=env, cwd=root, capture_output=True, text=True, timeout=BUILD_TIMEOUT
        )
        if result.returncode != 0:
            raise RecipeError(
                f"{recipe.dockerfile}:{step.line}: {' '.join(argv)} exited {result.returncode}\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )


def _host_token(recipe: Recipe, line: int, token: str, paths: dict[str, Path]) -> str:
    if not token.startswith("/"):
        return token
    host = image_path_of(token, paths)
    if host is None:
        raise RecipeError(f"{recipe.dockerfile}:{line}: {token} is neither a venv nor a COPY")
    return str(host)


@contextlib.contextmanager
def run_directory(cache: Path) -> Iterator[Path]:
    """A fresh directory the image's user can read, removed afterwards."""
    runs = cache / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(dir=runs))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
