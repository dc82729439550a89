"""Pytest plugin (`-p harness.stack_plugin`, in the root pyproject): one local stack per session.

`local_stack` starts every Python service on the harness's PostgreSQL and Redis the first time a
test asks for it, and stops them when the session ends; the e2e suite and the front end's
browser test share it, so `make test` starts the services once.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from ci.localapp.stack import REPO_ROOT, LocalStack, StackUrls


@pytest.fixture(scope="session")
def local_stack(request: pytest.FixtureRequest) -> Iterator[StackUrls]:
    admin_url: str = request.getfixturevalue("postgres_admin_url")
    redis_url = _own_redis_database(request)
    stack = LocalStack(repo_root=REPO_ROOT, postgres_admin_url=admin_url, redis_url=redis_url)
    urls = stack.start()
    sys.stderr.write(
        f"\nlocal stack up in {stack.start_seconds:.1f}s {stack.timings}; logs in {urls.logs}\n"
    )
    try:
        yield urls
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
def localapp_data() -> Iterator[Path]:
    """A data directory for `python -m ci.localapp --data-dir`, in a folder PostgreSQL's user
    can reach (pytest's tmp_path is private to root); removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="localapp-data-"))
    folder.chmod(0o755)
    yield folder / "data"
    shutil.rmtree(folder, ignore_errors=True)
