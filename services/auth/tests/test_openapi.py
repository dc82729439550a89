"""auth's OpenAPI document tells the truth: schemathesis, valid and invalid input for every
operation, finds no 5xx, no undocumented status and no response off its schema."""

from __future__ import annotations

from fastapi import FastAPI
from harness.openapi import assert_conforms


def test_auth_answers_as_its_openapi_says(app: FastAPI) -> None:
    operations = assert_conforms(app, max_examples=20)
    assert "POST /login" in operations
