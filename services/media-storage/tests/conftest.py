"""Fixtures for media-storage: an app on a temporary volume, tokens from the harness issuer."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from harness.tokens import TokenIssuer
from media_storage.app import create_app
from media_storage.config import Settings

MAX_BYTES = 64 * 1024  # also hard-coded in the tests (conftest is not importable)


@pytest.fixture
def media_root(tmp_path: Path) -> Path:
    return tmp_path / "volume" / "media"


@pytest.fixture
def settings(media_root: Path, token_issuer: TokenIssuer) -> Settings:
    return Settings(
        media_root=media_root,
        media_max_upload_bytes=MAX_BYTES,
        jwks_url=token_issuer.jwks_url,
        jwt_issuer=token_issuer.issuer,
        jwt_audience=token_issuer.audience,
    )


@pytest.fixture
def app(settings: Settings) -> Flask:
    return create_app(settings)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def alice(token_issuer: TokenIssuer) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_issuer.issue(str(uuid.uuid4()), 'alice')}"}


@pytest.fixture
def bob(token_issuer: TokenIssuer) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_issuer.issue(str(uuid.uuid4()), 'bob')}"}
