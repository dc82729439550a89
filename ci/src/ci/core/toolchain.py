"""Decisions about the containers the stages run in: which Debian packages the toolchain
installs, what makes a backing service unique to one test run, what an exit code means.

Pure Python (no dagger): the engine layer (ci.engine.toolchains, ci.engine.stages) calls these.
"""

from __future__ import annotations

import hashlib
import re
import signal

from pydantic import BaseModel, ConfigDict

SYSTEM_PACKAGES_FILE = ".ci/system-packages.txt"
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
