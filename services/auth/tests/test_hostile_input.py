"""Hostile input to auth: huge bodies, NUL bytes, one password in two Unicode forms."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterator

import httpx
import psycopg
import pytest
from argon2 import PasswordHasher
from auth.app import create_app
from auth.config import Settings
from harness.appservers import AsgiServer

PASSWORD = "correct horse battery staple"


def test_an_oversized_login_body_is_refused_before_it_is_read(
    make_settings: Callable[..., Settings],
) -> None:
    """A chunked body (no Content-Length) of 8 MiB under the real server: counted, then 413."""
    app = create_app(make_settings(auth_max_body_bytes=16 * 1024))

    def body() -> Iterator[bytes]:
        yield b'{"username": "mallory", "password": "'
        for _ in range(128):
            yield b"a" * 65536
        yield b'"}'

    with AsgiServer(lambda: app, lifespan="off") as server, httpx.Client(timeout=30) as client:
        try:
            answer = client.post(
                f"{server.url}/login", content=body(), headers={"Content-Type": "application/json"}
            )
            assert answer.status_code == 413
            assert "16384 bytes" in answer.json()["detail"]
        except httpx.TransportError:
            pass  # the server answered and closed while the client was still sending: also fine
    app.state.engine.dispose()


async def test_a_declared_oversized_body_is_413(make_settings: Callable[..., Settings]) -> None:
    app = create_app(make_settings(auth_max_body_bytes=16 * 1024))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://auth") as client:
        answer = await client.post("/register", content=b"{" + b" " * 20_000 + b"}")
    app.state.engine.dispose()
    assert answer.status_code == 413


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/login", {"username": "ali\x00ce", "password": PASSWORD}, "username"),
        ("/login", {"username": "alice", "password": "pass\x00word"}, "password"),
        ("/register", {"username": "alice", "password": "pass\x00word-long"}, "password"),
        ("/refresh", {"refresh_token": "abc\x00def"}, "refresh_token"),
        ("/logout", {"refresh_token": "abc\x00def"}, "refresh_token"),
    ],
)
async def test_a_nul_byte_is_a_422_naming_the_field(
    client: httpx.AsyncClient, path: str, body: dict[str, str], field: str
) -> None:
    answer = await client.post(path, json=body)
    assert answer.status_code == 422, answer.text
    assert field in answer.json()["detail"]


async def test_a_password_logs_in_whatever_its_unicode_normal_form(
    client: httpx.AsyncClient,
) -> None:
    """`é` typed as one code point (NFC) or as e + combining accent (NFD) is the same password."""
    password = "caf\u00e9 au lait, s'il vous pla\u00eet"
    decomposed = unicodedata.normalize("NFD", password)
    assert decomposed != password
    created = await client.post("/register", json={"username": "zoe", "password": decomposed})
    assert created.status_code == 201
    for form in (password, decomposed):
        answer = await client.post("/login", json={"username": "zoe", "password": form})
        assert answer.status_code == 200, answer.text


async def test_a_password_hashed_before_normalisation_still_logs_in_and_is_rehashed(
    client: httpx.AsyncClient, migrated_database_url: str
) -> None:
    """A user of the old deployment whose hash is of the decomposed text as typed."""
    password = "caf\u00e9 au lait"
    decomposed = unicodedata.normalize("NFD", password)
    created = await client.post("/register", json={"username": "yves", "password": password})
    assert created.status_code == 201
    legacy = PasswordHasher().hash(decomposed)  # what the old service stored
    with psycopg.connect(migrated_database_url) as conn:
        conn.execute(
            "UPDATE users SET password_hash = %s, password_nfc = false WHERE username = 'yves'",
            (legacy,),
        )

    answer = await client.post("/login", json={"username": "yves", "password": decomposed})

    assert answer.status_code == 200, answer.text
    with psycopg.connect(migrated_database_url) as conn:
        row = conn.execute("SELECT password_hash FROM users WHERE username = 'yves'").fetchone()
    assert row is not None
    assert row[0] != legacy
    assert PasswordHasher().verify(row[0], password)  # now the NFC form's hash
    for form in (password, decomposed):
        again = await client.post("/login", json={"username": "yves", "password": form})
        assert again.status_code == 200, again.text


@pytest.mark.parametrize(
    ("username", "password", "reason"),
    [
        ("alice", "password", "list of common and breached passwords"),
        ("alice", "PassWord", "list of common and breached passwords"),
        ("alice", "12345678", "list of common and breached passwords"),
        ("alice", "iloveyou", "list of common and breached passwords"),
        ("alice_smith", "Alice_Smith", "must not be the username"),
    ],
)
async def test_common_and_breached_passwords_are_refused_at_registration(
    client: httpx.AsyncClient, username: str, password: str, reason: str
) -> None:
    answer = await client.post("/register", json={"username": username, "password": password})
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert detail.startswith("body.password: ")
    assert reason in detail
    accepted = await client.post(
        "/register", json={"username": username, "password": "violet kettle orbit 7"}
    )
    assert accepted.status_code == 201, accepted.text
