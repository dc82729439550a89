"""Signing keys: from a Secret directory or the environment, dev-mode generation, rotation."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from auth.app import create_app
from auth.config import Settings
from auth.keys import KeyConfigError, load_keyring, private_key_pem, thumbprint_kid
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)
from fastapi import FastAPI
from pydantic import SecretStr
from servicekit.jwt import AsyncJwtVerifier, JwtVerifier, TokenError

WriteKey = Callable[[Path, str], Ed25519PrivateKey]
Server = Callable[[FastAPI], contextlib.AbstractContextManager[str]]
PASSWORD = "correct horse battery staple"


def login(base_url: str, username: str) -> str:
    with httpx.Client(base_url=base_url, timeout=10) as http:
        http.post("/register", json={"username": username, "password": PASSWORD})
        response = http.post("/login", json={"username": username, "password": PASSWORD})
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


@contextlib.contextmanager
def running(settings: Settings, serve: Server) -> Iterator[str]:
    app = create_app(settings)
    try:
        with serve(app) as url:
            yield url
    finally:
        app.state.engine.dispose()


def test_tokens_verify_through_the_live_jwks_endpoint(live_url: str, settings: Settings) -> None:
    token = login(live_url, "alice")
    verifier = JwtVerifier(
        f"{live_url}/.well-known/jwks.json",
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )
    verified = verifier.verify(token)
    assert verified.name == "alice"
    with httpx.Client(base_url=live_url) as http:
        me = http.get("/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert me["id"] == verified.sub


async def test_async_verifier_through_the_live_jwks_endpoint(
    live_url: str, settings: Settings
) -> None:
    token = login(live_url, "bob")
    verifier = AsyncJwtVerifier(
        f"{live_url}/.well-known/jwks.json", issuer="chat-auth", audience="chat"
    )
    assert (await verifier.verify(token)).name == "bob"
    wrong_audience = AsyncJwtVerifier(
        f"{live_url}/.well-known/jwks.json", issuer="chat-auth", audience="other"
    )
    with pytest.raises(TokenError) as caught:
        await wrong_audience.verify(token)
    assert caught.value.reason == "invalid_audience"


def test_rotation_publishes_both_keys_and_old_tokens_still_verify(
    make_settings: Callable[..., Settings], keys_dir: Path, write_key: WriteKey, serve: Server
) -> None:
    settings = make_settings()
    with running(settings, serve) as url:
        old_token = login(url, "carol")
        verifier = JwtVerifier(
            f"{url}/.well-known/jwks.json",
            issuer="chat-auth",
            audience="chat",
            min_refresh_interval=0,
        )
        assert verifier.verify(old_token).name == "carol"
        port = url.rsplit(":", 1)[1]

    write_key(keys_dir, "2026-06-01")  # the newer kid signs from now on
    with running(settings, serve) as url:
        # Same verifier, still caching the old JWKS: the new kid makes it refetch.
        verifier.jwks_url = f"{url}/.well-known/jwks.json"
        with httpx.Client(base_url=url) as http:
            kids = [key["kid"] for key in http.get("/.well-known/jwks.json").json()["keys"]]
        assert kids == ["2026-01-01", "2026-06-01"]
        new_token = login(url, "carol")
        assert verifier.verify(new_token).name == "carol"
        assert verifier.verify(old_token).name == "carol"
        assert port  # the first server is gone; the verifier follows the new URL


def test_jwks_entries_are_public_keys_only() -> None:
    key = Ed25519PrivateKey.generate()
    settings = Settings(auth_signing_key=SecretStr(private_key_pem(key).decode()))
    (entry,) = load_keyring(settings).jwks()["keys"]
    assert set(entry) == {"kty", "crv", "x", "kid", "alg", "use"}
    assert entry["kid"] == thumbprint_kid(key)


def test_active_kid_can_be_chosen_explicitly(keys_dir: Path, write_key: WriteKey) -> None:
    write_key(keys_dir, "2026-06-01")
    assert load_keyring(Settings(auth_signing_keys_dir=keys_dir)).active_kid == "2026-06-01"
    chosen = Settings(auth_signing_keys_dir=keys_dir, auth_active_kid="2026-01-01")
    assert load_keyring(chosen).active_kid == "2026-01-01"
    with pytest.raises(KeyConfigError, match="AUTH_ACTIVE_KID"):
        load_keyring(Settings(auth_signing_keys_dir=keys_dir, auth_active_kid="missing"))


def test_kubernetes_secret_volume_layout_is_understood(tmp_path: Path, write_key: WriteKey) -> None:
    data = tmp_path / "..2026_11_25_data"
    data.mkdir()
    write_key(data, "2026-02-02")
    mounted = tmp_path / "mount"
    mounted.mkdir()
    (mounted / "..data").symlink_to(data)
    (mounted / "2026-02-02.pem").symlink_to(mounted / "..data" / "2026-02-02.pem")
    assert list(load_keyring(Settings(auth_signing_keys_dir=mounted)).keys) == ["2026-02-02"]


def test_no_keys_outside_dev_mode_is_an_error_naming_the_variables() -> None:
    with pytest.raises(KeyConfigError, match="AUTH_SIGNING_KEYS_DIR"):
        load_keyring(Settings())


def test_dev_mode_generates_a_key() -> None:
    keyring = load_keyring(Settings(auth_dev_mode=True))
    assert keyring.active_kid.startswith("dev-")


def test_unusable_key_files_are_named(tmp_path: Path) -> None:
    (tmp_path / "broken.pem").write_text("not a pem")
    with pytest.raises(KeyConfigError, match=r"broken\.pem"):
        load_keyring(Settings(auth_signing_keys_dir=tmp_path))
    (tmp_path / "broken.pem").unlink()
    rsa = generate_private_key(public_exponent=65537, key_size=2048)
    pem = rsa.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    (tmp_path / "rsa.pem").write_bytes(pem)
    with pytest.raises(KeyConfigError, match="Ed25519"):
        load_keyring(Settings(auth_signing_keys_dir=tmp_path))


def test_missing_keys_dir_is_named(tmp_path: Path) -> None:
    with pytest.raises(KeyConfigError, match="not a directory"):
        load_keyring(Settings(auth_signing_keys_dir=tmp_path / "absent"))
