"""Settings every service reads from the environment (names are the team's shared contract).

Subclass `ServiceSettings` and add the service's own fields; pydantic-settings reads each field
from the upper-case environment variable of the same name.
"""

from __future__ import annotations

import logging

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from servicekit.redisconn import DEFAULT_MASTER, RedisTarget, parse_sentinels

_LOG_LEVELS = frozenset(logging.getLevelNamesMapping())


class ServiceSettings(BaseSettings):
    """DATABASE_URL, REDIS_URL (or REDIS_SENTINELS, REDIS_SENTINEL_MASTER, REDIS_PASSWORD,
    REDIS_AUTH_REQUIRED, REDIS_DB), JWKS_URL, JWT_ISSUER, JWT_AUDIENCE, SERVICE_TOKEN_AUDIENCE,
    LOG_LEVEL, API_DOCS."""

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False)

    # URLs may carry passwords: keep them out of repr() and therefore out of logs.
    database_url: str | None = Field(default=None, repr=False)
    redis_url: str | None = Field(default=None, repr=False)
    # Sentinel instead of REDIS_URL (servicekit.redisconn): `host:port,host:port`, the name of
    # the primary they monitor, and the password of Sentinels and servers (from a Secret).
    redis_sentinels: str | None = None
    redis_sentinel_master: str = DEFAULT_MASTER
    redis_password: str | None = Field(default=None, repr=False)
    # The Sentinels and servers require the password (charts/redis always does; the charts set
    # this with REDIS_SENTINELS): without one the service refuses to start, instead of failing
    # each Redis call with NOAUTH once it runs.
    redis_auth_required: bool = False
    redis_db: int = Field(default=0, ge=0)
    jwks_url: str | None = None
    jwt_issuer: str = "chat-auth"
    jwt_audience: str = "chat"
    # Audience of the service tokens auth issues to other services (client credentials): only
    # a service that accepts this audience (ai) takes them; user-facing APIs refuse them.
    service_token_audience: str = "chat-services"  # noqa: S105 (an audience name, no secret)
    log_level: str = "INFO"
    # FastAPI's interactive docs (/docs, /redoc) run scripts from a CDN on the service's origin:
    # for development only. The OpenAPI document itself (/openapi.json) is always served.
    api_docs: bool = False

    def redis_target(self) -> RedisTarget | None:
        """Where Redis is (Sentinel when REDIS_SENTINELS is set); None when nothing is set."""
        return RedisTarget.from_settings(
            self.redis_url,
            self.redis_sentinels,
            self.redis_sentinel_master,
            self.redis_password,
            self.redis_db,
        )

    @field_validator("redis_sentinels")
    @classmethod
    def _sentinel_addresses(cls, value: str | None) -> str | None:
        if value and value.strip():
            parse_sentinels(value)  # a clear error at start, naming REDIS_SENTINELS
        return value

    @model_validator(mode="after")
    def _sentinel_password(self) -> ServiceSettings:
        sentinel = bool(self.redis_sentinels and self.redis_sentinels.strip())
        if sentinel and self.redis_auth_required and not self.redis_password:
            raise ValueError(
                "REDIS_PASSWORD is not set (or empty), but REDIS_SENTINELS is and "
                "REDIS_AUTH_REQUIRED is true: the Sentinels and Redis servers require it "
                "(in Kubernetes: the `password` key of the Secret <service>-redis)"
            )
        return self

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in _LOG_LEVELS:
            raise ValueError(f"LOG_LEVEL must be one of {sorted(_LOG_LEVELS)}, got {value!r}")
        return level


def sqlalchemy_url(database_url: str, driver: str = "psycopg") -> str:
    """`postgresql://...` (the shared DATABASE_URL form) -> `postgresql+<driver>://...`."""
    scheme, sep, rest = database_url.partition("://")
    if not sep:
        raise ValueError("DATABASE_URL must look like postgresql://user:password@host:port/db")
    base = scheme.split("+", 1)[0]
    if base not in {"postgresql", "postgres"}:
        raise ValueError(f"DATABASE_URL must be a postgresql:// URL, got scheme {scheme!r}")
    return f"postgresql+{driver}://{rest}"
