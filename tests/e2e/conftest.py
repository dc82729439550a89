"""The base URL under test: E2E_BASE_URL (e.g. the K3s ingress), else the session's local stack.

The local stack (`local_stack`, from `harness.stack_plugin`) runs every Python service as a real
process (its production server, its migrations applied) on the harness's PostgreSQL and Redis,
behind an edge router that strips the /api/<service> prefixes like the ingress does.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from e2e.api import User, sign_up


@pytest.fixture(scope="session")
def base_url(request: pytest.FixtureRequest) -> str:
    external = os.environ.get("E2E_BASE_URL")
    if external:
        return external.rstrip("/")
    edge: str = request.getfixturevalue("local_stack").edge
    return edge


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
