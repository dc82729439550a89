"""Rate limits that nobody can turn against a service, and that outages do not spend.

Against the app under a real uvicorn over HTTP, with real PostgreSQL and Redis servers that the
tests stop and start. Loopback is the trusted gateway here (FORWARDED_ALLOW_IPS), so each
request names its client address in X-Forwarded-For, as the gateway does.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest
from argon2 import PasswordHasher
from auth.app import create_app
from auth.config import Settings
from auth.migrate import upgrade
from harness.appservers import AsgiServer
from harness.servers import PostgresServer, RedisServer

SECRET = "a-service-secret-for-the-security-tests"
PASSWORD = "correct horse battery staple"
ATTACKER = {"X-Forwarded-For": "203.0.113.66"}
BACKEND = {"X-Forwarded-For": "10.42.0.17"}


@pytest.fixture(autouse=True)
def _loopback_is_the_gateway(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "127.0.0.1")


def _token(client: httpx.Client, secret: str, headers: dict[str, str]) -> int:
    form = {"grant_type": "client_credentials", "client_id": "backend", "client_secret": secret}
    return client.post("/token", data=form, headers=headers).status_code


def test_wrong_secrets_cost_the_callers_address_not_the_client(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        auth_service_clients={"backend": SECRET},
        auth_login_limit_per_ip=5,
        auth_login_limit_per_account=5,
    )
    app = create_app(settings)
    with (
        AsgiServer(lambda: app, lifespan="off") as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        guesses = [_token(client, f"guess-{i}", ATTACKER) for i in range(8)]
        assert guesses == [401] * 5 + [429] * 3
        assert _token(client, SECRET, BACKEND) == 200  # backend is not locked out
        assert _token(client, SECRET, ATTACKER) == 200  # the right secret always gets a token
        assert _token(client, "guess-9", BACKEND) == 401  # backend's address has its own budget
    app.state.engine.dispose()


def test_without_redis_services_get_tokens_and_user_logins_fail_closed(
    make_settings: Callable[..., Settings], private_redis: RedisServer
) -> None:
    settings = make_settings(
        redis_url=private_redis.url(1), auth_service_clients={"backend": SECRET}
    )
    app = create_app(settings)
    credentials = {"username": "ursula", "password": PASSWORD}
    with (
        AsgiServer(lambda: app, lifespan="off") as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        assert client.post("/register", json=credentials).status_code == 201
        private_redis.stop()
        assert _token(client, SECRET, BACKEND) == 200
        assert _token(client, "a-guess", ATTACKER) == 429  # no failure budget: closed
        assert client.post("/login", json=credentials).status_code == 429
    app.state.engine.dispose()


def _auth_database(server: PostgresServer) -> str:
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE auth")
    upgrade(server.url("auth"))
    return server.url("auth")


def test_requests_the_server_could_not_serve_cost_no_budget(
    make_settings: Callable[..., Settings], private_postgres: PostgresServer
) -> None:
    """A client retrying through a PostgreSQL outage is not locked out afterwards, and only
    failures spend: logins that succeed do not."""
    settings = make_settings(
        database_url=_auth_database(private_postgres),
        auth_login_limit_per_ip=3,
        auth_login_limit_per_account=3,
    )
    app = create_app(settings)
    credentials = {"username": "olga", "password": PASSWORD}
    with (
        AsgiServer(lambda: app, lifespan="off") as server,
        httpx.Client(base_url=server.url, timeout=60) as client,
    ):
        assert client.post("/register", json=credentials).status_code == 201
        private_postgres.stop()
        during = [client.post("/login", json=credentials).status_code for _ in range(6)]
        assert during == [503] * 6
        private_postgres.start()
        after = [client.post("/login", json=credentials).status_code for _ in range(6)]
        assert after == [200] * 6
        wrong = {"username": "olga", "password": "not the password"}
        assert [client.post("/login", json=wrong).status_code for _ in range(4)] == [401] * 3 + [
            429
        ]
    app.state.engine.dispose()


@pytest.fixture
def argon2_verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every argon2 verification the server runs (the real one, counted)."""
    calls: list[str] = []
    real_verify = PasswordHasher.verify

    def counted(self: PasswordHasher, hash: str | bytes, password: str | bytes) -> Any:
        calls.append(str(password))
        return real_verify(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", counted)
    return calls


def test_one_password_hash_per_login_attempt_whatever_the_input(
    make_settings: Callable[..., Settings], argon2_verifications: list[str]
) -> None:
    """A password not in NFC (e + combining accent) cost two 64 MiB argon2 runs, even for an
    unknown user: an amplification anyone could use."""
    decomposed = unicodedata.normalize("NFD", "caf\u00e9 cr\u00e8me br\u00fbl\u00e9e")
    app = create_app(make_settings())
    with (
        AsgiServer(lambda: app, lifespan="off") as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        registered = client.post("/register", json={"username": "nadia", "password": decomposed})
        assert registered.status_code == 201
        for username, password, status in (
            ("nobody-here", decomposed, 401),
            ("nadia", decomposed + "x", 401),
            ("nadia", decomposed, 200),
        ):
            argon2_verifications.clear()
            answer = client.post("/login", json={"username": username, "password": password})
            assert answer.status_code == status, answer.text
            assert len(argon2_verifications) == 1, (username, len(argon2_verifications))
    app.state.engine.dispose()
