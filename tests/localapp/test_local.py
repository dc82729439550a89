"""LocalStack with a real service: databases, migrations, readiness, the edge, and failures."""

from __future__ import annotations

import httpx
import psycopg
import pytest
from ci.localapp.process import StackError
from ci.localapp.stack import SOURCE_ROOT, LocalStack

REPO_ROOT = SOURCE_ROOT.parents[1]


def _databases(admin_url: str) -> set[str]:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'stack_%'")
        return {str(name) for (name,) in rows}


def test_auth_alone_migrated_ready_and_behind_the_edge(
    postgres_admin_url: str, redis_url: str
) -> None:
    before = _databases(postgres_admin_url)
    stack = LocalStack(
        repo_root=REPO_ROOT, postgres_admin_url=postgres_admin_url, redis_url=redis_url,
        only=["auth"],
    )  # fmt: skip
    with stack as urls:
        created = _databases(postgres_admin_url) - before
        assert len(created) == 1
        assert next(iter(created)).startswith("stack_auth_")
        with psycopg.connect(f"{postgres_admin_url.rsplit('/', 1)[0]}/{created.pop()}") as conn:
            tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables")}
        assert "alembic_version" in tables, "auth's migrate command ran first"

        jwks = httpx.get(f"{urls.edge}/api/auth/.well-known/jwks.json", timeout=10)
        assert jwks.status_code == 200
        assert jwks.json()["keys"][0]["alg"] == "EdDSA"
        assert set(urls.services) == {"auth"}
        assert stack.timings.keys() >= {"migrations", "servers", "edge"}

    assert _databases(postgres_admin_url) == before, "the stack's databases are dropped"
    assert stack.killed == []
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{urls.services['auth']}/health", timeout=5)


def test_a_service_that_cannot_start_fails_the_start_with_its_log(
    postgres_admin_url: str, redis_url: str
) -> None:
    before = _databases(postgres_admin_url)
    stack = LocalStack(
        repo_root=REPO_ROOT, postgres_admin_url=postgres_admin_url, redis_url=redis_url,
        only=["auth"], extra_env={"auth": {"AUTH_DEV_MODE": "false"}},
    )  # fmt: skip
    with pytest.raises(StackError, match=r"(?s)^auth: exited with status \d+.*no signing keys"):
        stack.start()
    assert stack.processes == [], "everything started is stopped again"
    assert _databases(postgres_admin_url) == before
