"""Settings from the environment; each field reads the upper-case variable of its name."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from servicekit.redisconn import RedisTarget
from servicekit.settings import ServiceSettings

from backend.database import DatabaseURLError, async_url

DEFAULT_DATABASE_URL = "sqlite:///./backend.sqlite3"


class Settings(ServiceSettings):
    # SQLite when unset, so the service also runs alone for a quick local try.
    database_url: str = Field(default=DEFAULT_DATABASE_URL, repr=False)

    ai_url: str = "http://127.0.0.1:8001"
    # ai answers services with a token from auth's POST /token (client credentials): auth's
    # base URL, backend's client id and secret (auth's AUTH_SERVICE_CLIENTS holds the same).
    auth_url: str | None = None
    ai_client_id: str = "backend"
    ai_client_secret: SecretStr | None = Field(default=None, repr=False)
    ai_timeout_seconds: float = Field(20.0, gt=0)
    ai_connect_timeout_seconds: float = Field(2.0, gt=0)
    ai_attempts: int = Field(3, ge=1, le=10)
    ai_backoff_seconds: float = Field(0.25, ge=0)
    ai_backoff_max_seconds: float = Field(2.0, ge=0)
    ai_context_messages: int = Field(20, ge=1, le=200)

    # Replies the ai service could not give: retried in the background, then marked failed.
    reply_max_attempts: int = Field(5, ge=1)
    reply_retry_delay_seconds: float = Field(5.0, gt=0)
    reply_retry_interval_seconds: float = Field(5.0, ge=0)  # 0 turns the background retry off

    outbox_drain_interval_seconds: float = Field(1.0, ge=0)  # 0 turns the in-process drainer off
    outbox_batch_size: int = Field(100, ge=1, le=10_000)
    # An event the consumer has not acknowledged this long after sending is sent again.
    outbox_redeliver_after_seconds: float = Field(30.0, gt=0)
    # A sent batch counts as published only once this many replicas have it (Redis WAIT; 0 for
    # a single server without replicas), waiting at most the timeout; else it is sent again.
    outbox_wait_replicas: int = Field(0, ge=0)
    outbox_wait_timeout_ms: int = Field(1000, ge=1)
    events_stream: str = "chat:events"
    events_stream_maxlen: int | None = Field(1_000_000, ge=1)

    message_max_chars: int = Field(4000, ge=1, le=100_000)
    max_body_bytes: int = Field(64 * 1024, ge=1024)
    page_size_default: int = Field(20, ge=1)
    page_size_max: int = Field(100, ge=1)
    message_rate_limit: int = Field(30, ge=1)
    message_rate_window_seconds: float = Field(60.0, gt=0)
    rate_limit_fail_open: bool = True

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        try:
            async_url(value)
        except DatabaseURLError as exc:
            raise ValueError(str(exc)) from exc
        return value

    def ai_credentials(self) -> tuple[str, str, SecretStr]:
        """Token endpoint, client id and secret for ai; a clear error naming what is missing."""
        if not self.auth_url or self.ai_client_secret is None:
            raise ValueError(
                "AUTH_URL and AI_CLIENT_SECRET must be set: ai answers only callers "
                "with a service token from auth"
            )
        return f"{self.auth_url.rstrip('/')}/token", self.ai_client_id, self.ai_client_secret

    def required_redis_target(self) -> RedisTarget:
        target = self.redis_target()
        if target is None:
            raise ValueError(
                "REDIS_URL (or REDIS_SENTINELS) is not set; the backend needs Redis for events"
            )
        return target
