"""Login and registration rate limits per client IP and per account, tripping and recovering."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import httpx
import pytest
from auth.app import create_app
from auth.config import Settings
from fastapi import FastAPI
from harness.appservers import AsgiServer
from harness.servers import RedisServer

ClientFactory = Callable[[FastAPI], contextlib.AbstractAsyncContextManager[httpx.AsyncClient]]
PASSWORD = "correct horse battery staple"


async def test_login_per_account_trips_and_recovers(
    make_settings: Callable[..., Settings], asgi_client: ClientFactory
) -> None:
    app = create_app(make_settings(auth_login_limit_per_account=3, auth_rate_limit_period=3))
    async with asgi_client(app) as client:
        await client.post("/register", json={"username": "peggy", "password": PASSWORD})
        wrong = {"username": "peggy", "password": "guess-guess"}
        # Concurrent, so all four reach the limiter before any slow password check finishes.
        attempts = await asyncio.gather(*(client.post("/login", json=wrong) for _ in range(4)))
        assert sorted(r.status_code for r in attempts) == [401, 401, 401, 429]
        (limited,) = (r for r in attempts if r.status_code == 429)
        assert limited.json() == {"detail": "too many attempts; retry later"}
        retry_after = int(limited.headers["Retry-After"])
        assert retry_after == 1  # one attempt per 3 s / 3 comes back
        # Other accounts from the same client are not affected by peggy's budget.
        other = await client.post("/login", json={"username": "PEGGY2", "password": PASSWORD})
        assert other.status_code == 401
        await asyncio.sleep(retry_after)
        ok = await client.post("/login", json={"username": "Peggy", "password": PASSWORD})
        assert ok.status_code == 200
    app.state.engine.dispose()


async def test_login_per_ip_counts_every_account(
    make_settings: Callable[..., Settings], asgi_client: ClientFactory
) -> None:
    app = create_app(make_settings(auth_login_limit_per_ip=4, auth_rate_limit_period=60))
    async with asgi_client(app) as client:
        codes = [
            (await client.post("/login", json={"username": f"u{i}", "password": "x"})).status_code
            for i in range(5)
        ]
    app.state.engine.dispose()
    assert codes == [401, 401, 401, 401, 429]


async def test_register_limits_per_ip_and_per_account(
    make_settings: Callable[..., Settings], asgi_client: ClientFactory
) -> None:
    settings = make_settings(
        auth_register_limit_per_ip=3, auth_register_limit_per_account=2, auth_rate_limit_period=60
    )
    app = create_app(settings)
    async with asgi_client(app) as client:
        same = [
            (await client.post("/register", json={"username": "quinn", "password": PASSWORD}))
            for _ in range(3)
        ]
        assert [r.status_code for r in same] == [201, 409, 429]
        assert int(same[-1].headers["Retry-After"]) >= 1
        other = await client.post("/register", json={"username": "rupert", "password": PASSWORD})
        assert other.status_code == 429  # the IP's budget of 3 is spent
    app.state.engine.dispose()


async def test_redis_outage_fails_closed_and_recovers(
    make_settings: Callable[..., Settings],
    asgi_client: ClientFactory,
    private_redis: RedisServer,
) -> None:
    app = create_app(make_settings(redis_url=private_redis.url(1)))
    credentials = {"username": "sybil", "password": PASSWORD}
    async with asgi_client(app) as client:
        assert (await client.post("/register", json=credentials)).status_code == 201
        private_redis.stop()
        refused = await client.post("/login", json=credentials)
        assert refused.status_code == 429
        assert "Retry-After" in refused.headers
        assert (await client.get("/ready")).status_code == 503
        private_redis.start()
        assert (await client.post("/login", json=credentials)).status_code == 200
        assert (await client.get("/ready")).status_code == 200
    app.state.engine.dispose()


async def test_fail_open_is_configurable(
    make_settings: Callable[..., Settings],
    asgi_client: ClientFactory,
    private_redis: RedisServer,
) -> None:
    app = create_app(make_settings(redis_url=private_redis.url(1), auth_rate_limit_fail_open=True))
    credentials = {"username": "trent", "password": PASSWORD}
    async with asgi_client(app) as client:
        private_redis.stop()
        assert (await client.post("/register", json=credentials)).status_code == 201
        assert (await client.post("/login", json=credentials)).status_code == 200
    app.state.engine.dispose()


def _forged_logins(url: str, count: int) -> list[int]:
    """Wrong logins, each claiming another client address in X-Forwarded-For."""
    with httpx.Client(base_url=url, timeout=30) as client:
        return [
            client.post(
                "/login",
                json={"username": f"v{i}", "password": "x"},
                headers={"X-Forwarded-For": f"203.0.113.{i}"},
            ).status_code
            for i in range(count)
        ]


def test_a_forged_forwarded_for_does_not_buy_a_fresh_budget(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the proxies in FORWARDED_ALLOW_IPS (the gateway) may name the client; we are not one."""
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.255.0.1,10.42.0.0/16")
    app = create_app(make_settings(auth_login_limit_per_ip=3, auth_rate_limit_period=60))
    with AsgiServer(lambda: app, lifespan="off") as server:
        codes = _forged_logins(server.url, 4)
    app.state.engine.dispose()
    assert codes == [401, 401, 401, 429]


def test_the_trusted_gateway_names_the_client(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """From a listed proxy (here: loopback is the gateway), each forwarded client has its budget."""
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "127.0.0.1")
    app = create_app(make_settings(auth_login_limit_per_ip=3, auth_rate_limit_period=60))
    with AsgiServer(lambda: app, lifespan="off") as server:
        codes = _forged_logins(server.url, 4)
    app.state.engine.dispose()
    assert codes == [401, 401, 401, 401]
