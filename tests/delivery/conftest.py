"""Real git repositories for the delivery tests: a bare remote plus as many clones as needed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ci.core.gitrepo import Git
from delivery.helpers import SERVICES, configure_identity, git, seed_tree
from delivery.registry_server import LocalRegistry, run_registry


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    """A bare repository with charts for SERVICES on `main`, the only branch."""
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    seed = tmp_path / "seed"
    git(tmp_path, "clone", "--quiet", str(bare), str(seed))
    configure_identity(seed)
    seed_tree(seed, SERVICES)
    git(seed, "add", ".")
    git(seed, "commit", "--quiet", "-m", "chore: initial charts")
    git(seed, "push", "--quiet", "origin", "HEAD:refs/heads/main")
    return bare


@pytest.fixture
def clone(tmp_path: Path, remote: Path) -> Callable[[str], Git]:
    """clone(name) -> a fresh clone of the remote with a commit identity."""

    def make(name: str) -> Git:
        path = tmp_path / "clones" / name
        path.parent.mkdir(exist_ok=True)
        git(tmp_path, "clone", "--quiet", str(remote), str(path))
        configure_identity(path, name)
        return Git(path)

    return make


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    """A real docker-registry on a free loopback port with its own storage and config."""
    with run_registry(tmp_path_factory.mktemp("registry")) as server:
        yield server
