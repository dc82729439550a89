"""Decisions about the containers the stages run in: which Debian packages the toolchain
installs, what makes a backing service unique to one test run, what an exit code means.

Pure Python (no dagger): the engine layer (ci.engine.toolchains, ci.engine.stages) calls these.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import signal
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict

from ci.core.recipes import Step

SYSTEM_PACKAGES_FILE = ".ci/system-packages.txt"
# The toolchain container's layout is the developer's (`make setup`): the checkout at REPO, the
# dev venv at REPO/.venv, node_modules beside every package-lock.json, the git history at
# REPO/.git when a function mounts it. Tests find things where `make setup` puts them.
REPO = "/repo"
VENV = ".venv"  # relative to the checkout, as in the Makefile
# Files that decide the Python dependencies: staged before the source, so the venv layer stays
# cached while only source files change.
PYTHON_LOCK_FILES = ["pyproject.toml", "uv.lock", "services/*/pyproject.toml"]
NPM_LOCK_FILE = "package-lock.json"
UV_SYNC = ["uv", "sync", "--frozen", "--all-packages", "--group", "dev"]
NPM_CI = ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"]
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Debian policy for package names: lowercase letters, digits, + - . ; at least two characters.
DEBIAN_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
# The server settings the test harness gives its own PostgreSQL (tests/harness/servers.py):
# the same for the engine's test databases, so a suite that passes on a developer machine meets
# the same server in the engine (the image alone would allow 100 connections, not 300).
TEST_POSTGRES_SETTINGS = {
    "max_connections": "300",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}
# Likewise for Redis: many logical databases (one per test, cycled), no persistence.
TEST_REDIS_SETTINGS = {"databases": "4096", "save": "", "appendonly": "no"}
# A shell adds 128 to the number of the signal that killed a command (137 = SIGKILL).
SIGNAL_BASE = 128
MAX_SIGNAL = 64


class SystemPackage(BaseModel):
    """A Debian package the test tiers need, and the binary whose presence shows it installed."""

    model_config = ConfigDict(frozen=True)

    name: str
    probe: str


def parse_system_packages(text: str, path: str = SYSTEM_PACKAGES_FILE) -> list[SystemPackage]:
    """`<package> <probe>` lines (comments and blank lines aside); errors name file and line."""
    packages: list[SystemPackage] = []
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) != 2 or not DEBIAN_PACKAGE.match(fields[0]):
            problems.append(f"{path}:{number}: expected '<debian package> <binary>', got {line!r}")
            continue
        packages.append(SystemPackage(name=fields[0], probe=fields[1]))
    if problems:
        raise ValueError("\n".join(problems))
    if not packages:
        raise ValueError(f"{path}: lists no package")
    return packages


def backing_service_key(service: str, backing: str, test_container_id: str) -> str:
    """What makes a test run's PostgreSQL/Redis its own.

    The engine runs ONE instance of identical service definitions for every client, so two test
    runs binding the same `postgres` would share (and wipe) one database. The key goes into the
    service definition: it differs whenever the service under test or the container its tests
    run in differs, and stays equal for a run the engine deduplicates anyway (same container,
    same command: one execution), so cached test results survive.
    """
    digest = hashlib.sha256(f"{service}\0{backing}\0{test_container_id}".encode()).hexdigest()
    return f"{service}-{backing}-{digest[:16]}"


def killed_by(exit_code: int) -> str | None:
    """The signal's name when `exit_code` says a signal ended the command (128 + n), else None."""
    number = exit_code - SIGNAL_BASE
    if not 0 < number <= MAX_SIGNAL:
        return None
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def describe_exit(exit_code: int) -> str:
    """`exited 1`, or `killed by SIGKILL (exit 137)` (e.g. the OOM killer or a timeout)."""
    name = killed_by(exit_code)
    if name is None:
        return f"exited {exit_code}"
    return f"killed by {name} (exit {exit_code})"


def postgres_server_args(settings: dict[str, str] = TEST_POSTGRES_SETTINGS) -> list[str]:
    """`postgres -c key=value ...`: the command the PostgreSQL image's entrypoint runs."""
    return [
        "postgres",
        *(arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")),
    ]


def redis_server_args(settings: dict[str, str] = TEST_REDIS_SETTINGS) -> list[str]:
    """`redis-server --key value ...`: the command the Redis image's entrypoint runs."""
    return [
        "redis-server",
        *(arg for key, value in settings.items() for arg in (f"--{key}", value)),
    ]


def npm_folders(lock_files: Iterable[str]) -> list[str]:
    """The folders `npm ci` runs in: every package-lock.json of the source (as `make setup`
    does: the front end, the CRD schemas of tests/crds, any added later)."""
    folders = {
        posixpath.dirname(path)
        for path in lock_files
        if posixpath.basename(path) == NPM_LOCK_FILE and "node_modules" not in path.split("/")
    }
    return sorted(folders)


def npm_manifests(folders: Iterable[str]) -> list[str]:
    """package.json and package-lock.json of each npm folder: staged before the source."""
    return [f"{folder}/{name}" for folder in folders for name in ("package.json", NPM_LOCK_FILE)]


def environment(repo: str = REPO) -> dict[str, str]:
    """The toolchain's variables: uv installs the dev venv at `repo`/.venv (never downloading a
    Python), and that venv comes first on PATH."""
    venv = posixpath.join(repo, VENV)
    return {
        "UV_PROJECT_ENVIRONMENT": venv,
        "UV_LINK_MODE": "copy",
        "UV_PYTHON_DOWNLOADS": "never",
        "PATH": f"{venv}/bin:{SYSTEM_PATH}",
    }


def dependency_steps(npm: Iterable[str]) -> list[Step]:
    """What the toolchain runs over the staged lock files, before the source arrives: the
    venv's third-party packages, then `npm ci` in every npm folder."""
    steps = [Step(name="uv sync (dependencies)", args=[*UV_SYNC, "--no-install-workspace"])]
    steps += [Step(name=f"npm ci {folder}", args=NPM_CI, workdir=folder) for folder in npm]
    return steps


def source_steps() -> list[Step]:
    """What the toolchain runs once the source is in place: the workspace's own packages."""
    return [Step(name="uv sync", args=UV_SYNC)]


def git_steps() -> list[Step]:
    """Once the history is mounted at REPO/.git: git trusts the checkout whatever its owner,
    and the index matches HEAD (the mounted .git's index describes another disk)."""
    return [
        Step(name="git safe.directory", args=["git", "config", "--global", "safe.directory", "*"]),
        Step(name="git index", args=["git", "reset", "--quiet"]),
    ]
