"""Settings from the environment; each field reads the upper-case variable of its name."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from servicekit.settings import ServiceSettings


class Settings(ServiceSettings):
    ai_provider: Literal["local", "openai"] = "local"
    ai_openai_base_url: str | None = None  # e.g. https://api.example.com/v1
    ai_openai_model: str | None = None
    ai_openai_api_key: SecretStr | None = None  # from a Kubernetes Secret
    ai_openai_timeout_seconds: float = Field(30.0, gt=0)
    ai_openai_max_tokens: int | None = Field(None, gt=0)

    ai_cache_ttl_seconds: int = Field(3600, ge=0)  # 0 turns the cache off

    ai_max_body_bytes: int = Field(256 * 1024, ge=1024)
    ai_max_messages: int = Field(50, ge=1)
    ai_max_message_chars: int = Field(8000, ge=1)

    # Every caller shows a token from auth (JWKS_URL): a service token (client credentials,
    # audience SERVICE_TOKEN_AUDIENCE) gets AI_RATE_LIMIT per service, generous for backend's
    # replicas; a user's access token gets AI_USER_RATE_LIMIT per user, per window.
    ai_rate_limit: int = Field(600, ge=1)
    ai_user_rate_limit: int = Field(20, ge=1)
    ai_rate_window_seconds: float = Field(60.0, gt=0)
    rate_limit_fail_open: bool = True

    @model_validator(mode="after")
    def _openai_needs_endpoint(self) -> Settings:
        if self.ai_provider == "openai":
            missing = [
                name
                for name, value in (
                    ("AI_OPENAI_BASE_URL", self.ai_openai_base_url),
                    ("AI_OPENAI_MODEL", self.ai_openai_model),
                )
                if not value
            ]
            if missing:
                raise ValueError(f"AI_PROVIDER=openai needs {' and '.join(missing)}")
        return self
