"""Django for data-processor's tests, configured here only (the root pytest run also holds
FastAPI and Flask tests, so nothing Django-wide leaks outside this folder's fixtures).

Django is set up once per session; each test that asks for `stats_db` gets the harness's fresh
PostgreSQL database swapped into Django's default connection and migrated, and `stats_settings`
points REDIS_URL and the JWKS settings at this test's Redis database and token issuer.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dj_database_url
import django
import pytest
import redis
from django.core.management import call_command
from django.db import connections
from django.test.utils import override_settings
from harness.appservers import gunicorn_server
from harness.tokens import TokenIssuer
from servicekit.redisconn import RedisTarget

# Django must be set up before test modules import the models, i.e. when this conftest loads
# (before the harness's servers exist). Settings need a database and Redis URL at import, so
# placeholders go in; every test swaps in its real database (`stats_db`) and Redis
# (`stats_settings`). The environment is restored at once, so nothing outside this folder sees it.
_PLACEHOLDER_ENV = {
    "DJANGO_SETTINGS_MODULE": "data_processor.settings",
    "DJANGO_SECRET_KEY": f"test-only-{uuid.uuid4().hex}",
    "DATABASE_URL": "postgresql://placeholder@127.0.0.1:9/placeholder",
    "REDIS_URL": "redis://127.0.0.1:9/0",
}


def _setup_django() -> None:
    saved = {name: os.environ.get(name) for name in _PLACEHOLDER_ENV}
    os.environ.update(_PLACEHOLDER_ENV)
    try:
        django.setup()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


_setup_django()


def use_database(url: str) -> None:
    """Point Django's default connection at another database (closing the current one)."""
    connection = connections["default"]
    connection.close()
    parsed = dj_database_url.parse(url)
    for key in ("NAME", "USER", "PASSWORD", "HOST", "PORT"):
        connection.settings_dict[key] = parsed.get(key, "")


@pytest.fixture
def stats_db(database_url: str) -> Iterator[str]:
    """A migrated, empty database of this test's own; yields its URL."""
    use_database(database_url)
    call_command("migrate", verbosity=0, interactive=False)
    yield database_url
    connections.close_all()


@pytest.fixture
def stats_settings(redis_url: str, token_issuer: TokenIssuer) -> Iterator[dict[str, Any]]:
    values: dict[str, Any] = {
        "REDIS_URL": redis_url,
        "JWKS_URL": token_issuer.jwks_url,
        "JWT_ISSUER": token_issuer.issuer,
        "JWT_AUDIENCE": token_issuer.audience,
        # No admin login attempt comes back while a test runs, however slow the machine.
        "ADMIN_LOGIN_PERIOD_SECONDS": 3600,
    }
    # Django's REDIS is the target the environment's REDIS_URL makes (subprocesses get the URL).
    with override_settings(**values, REDIS=RedisTarget(url=redis_url)):
        yield values


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, socket_timeout=10)
    yield client
    client.close()


@pytest.fixture
def subprocess_env(stats_db: str, stats_settings: dict[str, Any]) -> dict[str, str]:
    """Environment for running the service's own commands against this test's servers."""
    return {
        **os.environ,
        "DJANGO_SECRET_KEY": f"test-only-{uuid.uuid4().hex}",
        "DATABASE_URL": stats_db,
        **{key: str(value) for key, value in stats_settings.items()},
    }


@pytest.fixture
def server_env(
    make_database: Callable[[], str], redis_url: str, token_issuer: TokenIssuer, tmp_path: Path
) -> dict[str, str]:
    """Environment of the production commands (gunicorn, manage.py) for this test's servers."""
    return {
        **os.environ,
        "DJANGO_SECRET_KEY": f"test-only-{uuid.uuid4().hex}",
        "DATABASE_URL": make_database(),
        "REDIS_URL": redis_url,
        "JWKS_URL": token_issuer.jwks_url,
        "GUNICORN_WORKER_TMP_DIR": str(tmp_path),
        # No admin login attempt comes back while a test runs, however slow the machine.
        "STATS_ADMIN_LOGIN_PERIOD_SECONDS": "3600",
    }


@pytest.fixture
def manage(server_env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess[bytes]]:
    """`manage("migrate", "--noinput", env={...})`: a management command, as the K8s Job runs it."""

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
        command = [sys.executable, "-m", "data_processor.manage", *args]
        return subprocess.run(
            command, env={**server_env, **(env or {})}, capture_output=True, timeout=120
        )

    return run


@pytest.fixture
def server(
    server_env: dict[str, str], manage: Callable[..., subprocess.CompletedProcess[bytes]]
) -> Iterator[str]:
    """gunicorn serving the migrated app, as service.yaml runs it; yields its base URL."""
    migrate = manage("migrate", "--noinput")
    assert migrate.returncode == 0, migrate.stderr.decode()
    with gunicorn_server("data_processor.gunicorn_conf", "data_processor.wsgi", server_env) as url:
        yield url
