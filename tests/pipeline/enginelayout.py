"""The engine's view of the repository, replayed on the host.

From the same data the Dagger layer composes its containers from (ci.core.recipes'
SOURCE_IGNORE, ci.core.toolchain's layout and steps): the files the engine uploads, the
checkout at `<dir>/repo` with the venv and node_modules where the toolchain installs them, the
history at `.git` only because `test-repo` mounts it. Then a recipe Step runs there as the
toolchain container would run it, with the toolchain's PATH and a HOME of its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ci.core import recipes, toolchain
from harness.lifetime import bound_to_parent

ROOT = Path(__file__).resolve().parents[2]
STEP_TIMEOUT_SECONDS = 1800.0


class ReplayError(RuntimeError):
    """A toolchain step failed while laying out the checkout."""


@dataclass(frozen=True)
class EngineCheckout:
    """A checkout laid out as the engine's toolchain container lays out /repo."""

    repo: Path
    home: Path
    tools: Path  # what the toolchain adds to /usr/local/bin besides the image's own: uv

    def env(self) -> dict[str, str]:
        """The container's variables (the venv first on PATH), with the host's caches of uv
        and npm (shared cache volumes in the engine) and the test harness's own settings."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "UV_"))}
        env.pop("PYTHONPATH", None)
        env |= toolchain.environment(str(self.repo))
        env["PATH"] = env["PATH"].replace(
            toolchain.SYSTEM_PATH, f"{self.tools}:{toolchain.SYSTEM_PATH}"
        )
        env |= {"HOME": str(self.home), "UV_CACHE_DIR": uv_cache(), "NPM_CONFIG_CACHE": npm_cache()}
        return env

    def run(
        self, step: recipes.Step, extra: Sequence[str] = ()
    ) -> subprocess.CompletedProcess[str]:
        """One recipe Step in its folder, as the toolchain's `with_exec` runs it."""
        return subprocess.run(
            bound_to_parent([*step.args, *extra]),
            cwd=self.repo / step.workdir,
            env={**self.env(), **step.env},
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT_SECONDS,
            check=False,
        )

    def run_all(self, steps: Sequence[recipes.Step]) -> None:
        for step in steps:
            done = self.run(step)
            if done.returncode != 0:
                raise ReplayError(f"{step.name}: {done.stdout[-2000:]}\n{done.stderr[-2000:]}")


def uv_cache() -> str:
    return os.environ.get("UV_CACHE_DIR", str(Path.home() / ".cache" / "uv"))


def npm_cache() -> str:
    return os.environ.get("NPM_CONFIG_CACHE", str(Path.home() / ".npm"))


def uploaded_files(root: Path = ROOT) -> list[str]:
    """What the engine uploads from the checkout: every file but those SOURCE_IGNORE leaves
    out (walked like the engine's upload, untracked files included)."""
    files: list[str] = []
    for folder, dirs, names in os.walk(root):
        here = Path(folder).relative_to(root).as_posix()
        prefix = "" if here == "." else f"{here}/"
        # A symlink to a folder (charts/<name>/charts/lib) is uploaded as the link.
        links = [d for d in dirs if (Path(folder) / d).is_symlink()]
        dirs[:] = [d for d in dirs if d not in links and not recipes.source_ignored(prefix + d)]
        entries = [*names, *links]
        files += [prefix + n for n in entries if not recipes.source_ignored(prefix + n)]
    return sorted(files)


def copy_files(root: Path, files: Sequence[str], target: Path) -> None:
    for name in files:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, target / name, follow_symlinks=False)


def mount_history(root: Path, repo: Path) -> None:
    """The checkout's history at repo/.git (every ref, as the engine copies the .git folder)."""
    clone = ["git", "clone", "--quiet", "--mirror", str(root), str(repo / ".git")]
    subprocess.run(bound_to_parent(clone), check=True, timeout=600, capture_output=True)
    config = ["git", "-C", str(repo), "config", "core.bare", "false"]
    subprocess.run(config, check=True, timeout=60, capture_output=True)


def lay_out(target: Path, root: Path = ROOT) -> EngineCheckout:
    """The toolchain's checkout in `target`: lock files and dependencies first, then the
    source, then the history, each with the toolchain's own steps."""
    checkout = EngineCheckout(repo=target / "repo", home=target / "home", tools=target / "bin")
    checkout.home.mkdir(parents=True)
    checkout.tools.mkdir()
    (checkout.tools / "uv").symlink_to(Path(sys.executable).parent / "uv")
    uploaded = uploaded_files(root)
    lock_files = [f for f in uploaded if f.endswith(toolchain.NPM_LOCK_FILE)]
    npm = toolchain.npm_folders(lock_files)
    staged = [*toolchain.PYTHON_LOCK_FILES, *toolchain.npm_manifests(npm)]
    copy_files(root, [f for f in uploaded if recipes.matches_any(f, staged)], checkout.repo)
    checkout.run_all(toolchain.dependency_steps(npm))
    copy_files(root, uploaded, checkout.repo)
    checkout.run_all(toolchain.source_steps())
    mount_history(root, checkout.repo)
    checkout.run_all(toolchain.git_steps())
    return checkout
