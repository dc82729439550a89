"""The base URL under test: E2E_BASE_URL (e.g. the K3s ingress), else a local stack of our own.

The local stack runs every Python service as a real process (its production server, its
migrations applied) on the harness's PostgreSQL and Redis, behind an edge router that strips the
/api/<service> prefixes like the ingress does.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from stack.local import LocalStack

from e2e.api import User, sign_up

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICES_MARKER = "services"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{SERVICES_MARKER}(*names): the services a test goes through; against the local stack "
        "it is skipped, with the reason, while one of them has no service.yaml in this checkout",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Skip (never silently) what needs a service that is not in the repository yet."""
    if os.environ.get("E2E_BASE_URL"):
        return  # a deployed environment must have every service: nothing is skipped
    for item in items:
        for marker in item.iter_markers(SERVICES_MARKER):
            missing = [n for n in marker.args if not _in_catalog(n)]
            if missing:
                reason = f"service(s) {', '.join(missing)} not in this checkout: " + ", ".join(
                    f"services/{n}/service.yaml missing" for n in missing
                )
                item.add_marker(pytest.mark.skip(reason=reason))


def _in_catalog(name: str) -> bool:
    return (REPO_ROOT / "services" / name / "service.yaml").is_file()


@pytest.fixture(scope="session")
def base_url(request: pytest.FixtureRequest) -> Iterator[str]:
    external = os.environ.get("E2E_BASE_URL")
    if external:
        yield external.rstrip("/")
        return
    admin_url: str = request.getfixturevalue("postgres_admin_url")
    redis_url = _own_redis_database(request)
    stack = LocalStack(repo_root=REPO_ROOT, postgres_admin_url=admin_url, redis_url=redis_url)
    urls = stack.start()
    sys.stderr.write(
        f"\nlocal stack up in {stack.start_seconds:.1f}s {stack.timings}; logs in {urls.logs}\n"
    )
    try:
        yield urls.edge
    finally:
        stack.stop()
        killed = f"; killed after the grace period: {stack.killed}" if stack.killed else ""
        sys.stderr.write(f"\nlocal stack stopped in {stack.timings['stop']:.1f}s{killed}\n")


def _own_redis_database(request: pytest.FixtureRequest) -> str:
    """A flushed logical Redis database of the harness's server, shared by all services."""
    base: str = request.getfixturevalue("redis_base_url")
    databases: Iterator[int] = request.getfixturevalue("_redis_databases")
    parts = urlsplit(base)
    url = urlunsplit((parts.scheme, parts.netloc, f"/{next(databases)}", parts.query, ""))
    client = redis.Redis.from_url(url, socket_timeout=5)
    client.flushdb()
    client.close()
    return url


@pytest.fixture
def new_user(base_url: str) -> Iterator[Callable[[], User]]:
    """Factory: a freshly registered and logged-in user per call (clients closed afterwards)."""
    users: list[User] = []

    def make() -> User:
        user = sign_up(base_url)
        users.append(user)
        return user

    yield make
    for user in users:
        user.client.close()


@pytest.fixture
def user(new_user: Callable[[], User]) -> User:
    return new_user()
