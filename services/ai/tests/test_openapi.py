"""ai's OpenAPI document tells the truth: schemathesis, valid and invalid input for every
operation, finds no 5xx, no undocumented status and no response off its schema."""

from __future__ import annotations

from ai.app import create_app
from ai.config import Settings
from harness.openapi import assert_conforms
from harness.tokens import TokenIssuer


def test_ai_answers_as_its_openapi_says(token_issuer: TokenIssuer, redis_url: str) -> None:
    app = create_app(
        Settings(redis_url=redis_url, jwks_url=token_issuer.jwks_url, ai_rate_limit=100_000)
    )
    service = {"Authorization": f"Bearer {token_issuer.service_token('backend')}"}
    operations = assert_conforms(app, headers=service, max_examples=30)
    assert "POST /v1/reply" in operations
