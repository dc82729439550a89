"""A service behind Sentinel whose password is missing refuses to start, naming REDIS_PASSWORD,
instead of starting and failing every Redis call with NOAUTH (production's Secret without its
`password` key). Real processes: auth as it runs (its migration and its server, LocalStack),
Redis servers and Sentinels that all require the password (tests/harness/sentinel.py)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest
from ci.localapp.process import StackError
from ci.localapp.stack import SOURCE_ROOT, LocalStack
from harness.sentinel import SentinelGroup

REPO_ROOT = SOURCE_ROOT.parents[1]
PASSWORD = secrets.token_urlsafe(16)


@pytest.fixture
def guarded_sentinels() -> Iterator[SentinelGroup]:
    group = SentinelGroup(password=PASSWORD)
    try:
        yield group.start()
    finally:
        group.destroy()


def sentinel_stack(
    service: str, postgres_admin_url: str, redis_url: str, group: SentinelGroup, **env: str
) -> LocalStack:
    sentinel = {
        "REDIS_SENTINELS": group.addresses(),
        "REDIS_SENTINEL_MASTER": group.master,
        "REDIS_AUTH_REQUIRED": "true",  # what the charts set beside REDIS_SENTINELS
    }
    return LocalStack(
        repo_root=REPO_ROOT, postgres_admin_url=postgres_admin_url, redis_url=redis_url,
        only=[service], extra_env={service: {**sentinel, **env}}, ready_timeout=60,
    )  # fmt: skip


# ai's server is its only process (auth is not started: its JWKS address is only recorded);
# auth's migration, which reads the same settings, refuses before auth's server starts.
@pytest.mark.parametrize(
    ("service", "process", "env"),
    [
        ("ai", "ai", {"JWKS_URL": "http://127.0.0.1:9/.well-known/jwks.json"}),
        ("auth", "auth migrate", {}),
    ],
)
def test_without_the_password_the_service_refuses_to_start_naming_it(
    postgres_admin_url: str,
    redis_url: str,
    guarded_sentinels: SentinelGroup,
    service: str,
    process: str,
    env: dict[str, str],
) -> None:
    stack = sentinel_stack(service, postgres_admin_url, redis_url, guarded_sentinels, **env)
    refused = rf"(?s)^{process}: exited with status \d+.*REDIS_PASSWORD is not set"
    with pytest.raises(StackError, match=refused):
        stack.start()
    assert stack.processes == []


def test_with_the_password_auth_is_ready_through_the_sentinels(
    postgres_admin_url: str, redis_url: str, guarded_sentinels: SentinelGroup
) -> None:
    stack = sentinel_stack(
        "auth", postgres_admin_url, redis_url, guarded_sentinels, REDIS_PASSWORD=PASSWORD
    )
    with stack as urls:
        ready = httpx.get(f"{urls.services['auth']}/ready", timeout=10)
        assert ready.status_code == 200, ready.text
