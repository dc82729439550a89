"""Settings of the auth service (shared names from servicekit plus AUTH_* of its own)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from servicekit.settings import ServiceSettings


class Settings(ServiceSettings):
    # Signing keys: a directory of PEM private keys (a mounted Secret; file name = kid), and/or
    # one PEM in AUTH_SIGNING_KEY. AUTH_ACTIVE_KID picks the signer, otherwise the greatest kid
    # signs (name kids so they sort by age, e.g. 2026-11-25). Generated only in dev mode.
    auth_signing_keys_dir: Path | None = None
    auth_signing_key: SecretStr | None = None
    auth_active_kid: str | None = None
    auth_dev_mode: bool = False

    auth_access_token_ttl: int = Field(default=900, ge=30, description="seconds")
    auth_refresh_token_ttl: int = Field(default=30 * 24 * 3600, ge=60, description="seconds")

    # Service clients (OAuth client credentials, POST /token): JSON {"<client id>": "<secret>"}
    # from a Secret, e.g. AUTH_SERVICE_CLIENTS='{"backend": "..."}'. Their tokens carry the
    # audience SERVICE_TOKEN_AUDIENCE, which only ai accepts.
    auth_service_clients: dict[str, SecretStr] = Field(default_factory=dict, repr=False)
    auth_service_token_ttl: int = Field(default=300, ge=30, description="seconds")

    # Every request body is a small JSON document; larger ones get 413 before they are read.
    auth_max_body_bytes: int = Field(default=16 * 1024, ge=1024)

    # Rate limits: `limit` attempts per AUTH_RATE_LIMIT_PERIOD seconds, per client IP and per
    # account (username). Only failures count: a login that succeeds, or that the server could
    # not serve (503), is handed back. A service client's wrong secret costs the client IP's
    # login budget, never the client id. The client IP is the peer address as uvicorn reports
    # it; behind the ingress set FORWARDED_ALLOW_IPS so uvicorn takes it from X-Forwarded-For.
    auth_rate_limit_period: float = Field(default=60.0, gt=0)
    auth_login_limit_per_ip: int = Field(default=30, ge=1)
    auth_login_limit_per_account: int = Field(default=10, ge=1)
    auth_register_limit_per_ip: int = Field(default=10, ge=1)
    auth_register_limit_per_account: int = Field(default=5, ge=1)
    # Closed by default: without Redis there is no brute-force protection, so refuse logins.
    auth_rate_limit_fail_open: bool = False
