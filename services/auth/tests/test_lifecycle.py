"""The whole token lifecycle through the HTTP API, against real PostgreSQL and Redis."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import jwt
import psycopg
import pytest
from auth.config import Settings

Login = Callable[..., Awaitable[dict[str, Any]]]
PASSWORD = "correct horse battery staple"


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def test_register_returns_the_user_and_refuses_a_taken_name(
    client: httpx.AsyncClient,
) -> None:
    created = await client.post("/register", json={"username": "Alice", "password": PASSWORD})
    assert created.status_code == 201
    body = created.json()
    assert body["username"] == "Alice"
    assert len(body["id"]) == 36
    for name in ("Alice", "alice", "ALICE"):
        taken = await client.post("/register", json={"username": name, "password": PASSWORD})
        assert taken.status_code == 409
        assert taken.json() == {"detail": "username already taken"}


async def test_login_issues_a_signed_access_token_and_a_refresh_token(
    client: httpx.AsyncClient, register_and_login: Login, settings: Settings
) -> None:
    tokens = await register_and_login(client, "bob")
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == settings.auth_access_token_ttl
    header = jwt.get_unverified_header(tokens["access_token"])
    assert header["alg"] == "EdDSA"
    assert header["kid"] == "2026-01-01"
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert set(claims) == {"sub", "name", "iss", "aud", "iat", "nbf", "exp", "jti"}
    assert (claims["name"], claims["iss"], claims["aud"]) == ("bob", "chat-auth", "chat")
    assert claims["exp"] - claims["iat"] == settings.auth_access_token_ttl
    me = await client.get("/me", headers=bearer(tokens))
    assert me.json() == {"id": claims["sub"], "username": "bob"}


async def test_login_is_case_insensitive_on_the_name(
    client: httpx.AsyncClient, register_and_login: Login
) -> None:
    await register_and_login(client, "Carol")
    response = await client.post("/login", json={"username": "carol", "password": PASSWORD})
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("username", "password"), [("dave", "wrong password!"), ("nobody", PASSWORD)]
)
async def test_bad_credentials_get_401_without_saying_which_part(
    client: httpx.AsyncClient, register_and_login: Login, username: str, password: str
) -> None:
    await register_and_login(client, "dave")
    response = await client.post("/login", json={"username": username, "password": password})
    assert response.status_code == 401
    assert response.json() == {"detail": "invalid username or password"}


async def test_passwords_are_stored_as_argon2id(
    client: httpx.AsyncClient, migrated_database_url: str
) -> None:
    await client.post("/register", json={"username": "erin", "password": PASSWORD})
    with psycopg.connect(migrated_database_url) as conn:
        row = conn.execute("SELECT password_hash FROM users WHERE username = 'erin'").fetchone()
    assert row is not None
    assert row[0].startswith("$argon2id$")
    assert PASSWORD not in row[0]


async def test_refresh_rotates_and_reuse_revokes_the_whole_family(
    client: httpx.AsyncClient, register_and_login: Login
) -> None:
    first = await register_and_login(client, "frank")
    second = (await client.post("/refresh", json={"refresh_token": first["refresh_token"]})).json()
    assert second["refresh_token"] != first["refresh_token"]
    assert (await client.get("/me", headers=bearer(second))).status_code == 200
    third = await client.post("/refresh", json={"refresh_token": second["refresh_token"]})
    assert third.status_code == 200

    replay = await client.post("/refresh", json={"refresh_token": first["refresh_token"]})
    assert replay.status_code == 401
    assert replay.json() == {"detail": "refresh token reuse detected"}
    # The legitimate holder's newest token died with the family.
    newest = await client.post("/refresh", json={"refresh_token": third.json()["refresh_token"]})
    assert newest.status_code == 401


async def test_reuse_revokes_only_that_login(
    client: httpx.AsyncClient, register_and_login: Login
) -> None:
    laptop = await register_and_login(client, "grace")
    phone = (await client.post("/login", json={"username": "grace", "password": PASSWORD})).json()
    await client.post("/refresh", json={"refresh_token": laptop["refresh_token"]})
    await client.post("/refresh", json={"refresh_token": laptop["refresh_token"]})  # reuse
    still = await client.post("/refresh", json={"refresh_token": phone["refresh_token"]})
    assert still.status_code == 200


async def test_logout_revokes_the_refresh_token(
    client: httpx.AsyncClient, register_and_login: Login
) -> None:
    tokens = await register_and_login(client, "heidi")
    response = await client.post("/logout", json={"refresh_token": tokens["refresh_token"]})
    assert response.status_code == 204
    assert response.content == b""
    after = await client.post("/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert after.status_code == 401
    again = await client.post("/logout", json={"refresh_token": tokens["refresh_token"]})
    assert again.status_code == 204


async def test_expired_and_unknown_refresh_tokens_are_refused(
    client: httpx.AsyncClient, register_and_login: Login, migrated_database_url: str
) -> None:
    tokens = await register_and_login(client, "ivan")
    unknown = await client.post("/refresh", json={"refresh_token": "made-up"})
    assert unknown.status_code == 401
    with psycopg.connect(migrated_database_url) as conn:
        conn.execute("UPDATE refresh_tokens SET expires_at = now() - interval '1 second'")
    expired = await client.post("/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert expired.status_code == 401
    assert expired.json() == {"detail": "invalid refresh token"}


async def test_refresh_tokens_are_stored_hashed(
    client: httpx.AsyncClient, register_and_login: Login, migrated_database_url: str
) -> None:
    tokens = await register_and_login(client, "judy")
    with psycopg.connect(migrated_database_url) as conn:
        stored = conn.execute("SELECT token_hash FROM refresh_tokens").fetchall()
    assert len(stored) == 1
    assert tokens["refresh_token"] not in stored[0][0]


@pytest.mark.parametrize("authorization", [None, "Bearer x.y.z", "Bearer "])
async def test_me_needs_a_valid_token(client: httpx.AsyncClient, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = await client.get("/me", headers=headers)
    assert response.status_code == 401
    assert isinstance(response.json()["detail"], str)


@pytest.mark.parametrize(
    ("path", "content"),
    [
        ("/register", b"{"),
        ("/register", b'{"username": "ok-name"}'),
        ("/register", b'{"username": "x", "password": "long enough"}'),
        ("/register", b'{"username": "bad name!", "password": "long enough"}'),
        ("/register", b'{"username": "okname", "password": "short"}'),
        ("/register", b'{"username": 5, "password": "long enough"}'),
        ("/register", b'["username", "password"]'),
        ("/login", b"null"),
        ("/login", b'{"username": "a", "password": "b", "extra": 1}'),
        ("/refresh", b"{}"),
        ("/logout", b'{"refresh_token": ""}'),
        ("/login", b"\xff\xfe\xfd"),
    ],
)
async def test_malformed_bodies_get_4xx_with_a_message(
    client: httpx.AsyncClient, path: str, content: bytes
) -> None:
    response = await client.post(
        path, content=content, headers={"Content-Type": "application/json"}
    )
    assert 400 <= response.status_code < 500  # 422 for validation, 400 for undecodable bytes
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    assert detail


async def test_ops_endpoints(client: httpx.AsyncClient, register_and_login: Login) -> None:
    await register_and_login(client, "kim")
    assert (await client.get("/health")).json() == {"status": "ok"}
    ready = await client.get("/ready")
    assert ready.status_code == 200
    assert set(ready.json()["checks"]) == {"postgres", "redis"}
    metrics = (await client.get("/metrics")).text
    assert 'http_requests_total{method="POST",route="/login",status="200"} 1.0' in metrics
    openapi = (await client.get("/openapi.json")).json()
    assert {"/register", "/login", "/refresh", "/logout", "/me", "/.well-known/jwks.json"} <= set(
        openapi["paths"]
    )
