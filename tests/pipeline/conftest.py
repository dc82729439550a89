"""Fixtures: real temporary git repositories for the pipeline's pure core.

Each test gets a repository of its own with its own service.yaml files, so the tests do not
depend on what happens to be under services/ in the real checkout.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest
from pipeline.repos import BASE_FILES, MakeRepo, Repo


@pytest.fixture
def make_repo(tmp_path: Path) -> MakeRepo:
    """Factory: a repository on branch main whose first commit holds `files`."""
    count = 0

    def make(files: Mapping[str, str] = BASE_FILES) -> Repo:
        nonlocal count
        count += 1
        root = tmp_path / f"repo{count}"
        root.mkdir()
        repo = Repo(root)
        repo.git("init", "-q", "-b", "main")
        repo.commit(files, "initial")
        return repo

    return make


@pytest.fixture
def repo(make_repo: MakeRepo) -> Repo:
    """The standard fixture monorepo: auth, backend, frontend, servicekit, charts."""
    return make_repo(BASE_FILES)
