"""The FastAPI application: `create_app(settings)`; `ai.main:app` is the served instance."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import redis.asyncio as redis
from fastapi import Body, FastAPI, HTTPException, Response, status
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field
from servicekit.fastapi import CurrentUser, docs_options, install
from servicekit.jwt import AsyncJwtVerifier, VerifiedToken
from servicekit.logging import configure_logging
from servicekit.ratelimit import AsyncRateLimiter
from servicekit.redisconn import async_redis_client

from ai.cache import ReplyCache, cache_key
from ai.config import Settings
from ai.providers import ChatMessage, LocalProvider, OpenAIProvider, Provider, ProviderError

log = logging.getLogger(__name__)


class ReplyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    messages: list[ChatMessage] = Field(min_length=1)


class ReplyResponse(BaseModel):
    content: str
    model: str
    cached: bool


def build_provider(settings: Settings) -> Provider:
    if settings.ai_provider == "openai":
        # Settings guarantees both when the provider is openai.
        assert settings.ai_openai_base_url is not None
        assert settings.ai_openai_model is not None
        return OpenAIProvider(
            settings.ai_openai_base_url,
            settings.ai_openai_model,
            settings.ai_openai_api_key,
            timeout=settings.ai_openai_timeout_seconds,
            max_tokens=settings.ai_openai_max_tokens,
        )
    return LocalProvider()


def _check_limits(settings: Settings, messages: list[ChatMessage]) -> None:
    if len(messages) > settings.ai_max_messages:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"messages: at most {settings.ai_max_messages} messages per request",
        )
    for index, message in enumerate(messages):
        if len(message.content) > settings.ai_max_message_chars:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                f"messages.{index}.content: at most {settings.ai_max_message_chars} characters",
            )


def verifier(settings: Settings) -> AsyncJwtVerifier:
    """Tokens from auth: users' (JWT_AUDIENCE) and services' (SERVICE_TOKEN_AUDIENCE)."""
    if not settings.jwks_url:
        raise ValueError("JWKS_URL must be set: ai answers only callers with a token from auth")
    audiences = [settings.jwt_audience, settings.service_token_audience]
    return AsyncJwtVerifier(settings.jwks_url, issuer=settings.jwt_issuer, audience=audiences)


def _is_service(settings: Settings, caller: VerifiedToken) -> bool:
    """A service token: the service audience and a client id (a user's token has neither)."""
    audience = caller.claims.get("aud")
    audiences = [audience] if isinstance(audience, str) else list(audience or [])
    return settings.service_token_audience in audiences and bool(caller.claims.get("client_id"))


def caller_id(settings: Settings, caller: VerifiedToken) -> str:
    """`service:<client id>` or `user:<sub>`: whose budget a request spends, whose cache it uses."""
    if _is_service(settings, caller):
        return f"service:{caller.claims['client_id']}"
    return f"user:{caller.sub}"


def budget(settings: Settings, caller: VerifiedToken) -> tuple[str, int]:
    """The rate-limit key and limit of a caller: per service, or (smaller) per user."""
    limit = settings.ai_rate_limit if _is_service(settings, caller) else settings.ai_user_rate_limit
    return f"reply:{caller_id(settings, caller)}", limit


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging("ai", settings.log_level)
    provider = build_provider(settings)
    target = settings.redis_target()
    if target is None:
        log.warning("REDIS_URL is not set: replies are neither cached nor rate limited")
    client: redis.Redis | None = (
        async_redis_client(target, timeout=0.5) if target is not None else None
    )
    cache = ReplyCache(client, settings.ai_cache_ttl_seconds) if client is not None else None
    limiter = (
        AsyncRateLimiter(client, prefix="ai:ratelimit", fail_open=settings.rate_limit_fail_open)
        if client is not None
        else None
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await provider.aclose()
            if client is not None:
                await client.aclose()

    app = FastAPI(
        title="chat ai", version="0.1.0", lifespan=lifespan, **docs_options(settings.api_docs)
    )
    # No readiness dependency: without Redis, replies are still given (uncached, unlimited).
    metrics = install(
        app,
        readiness_checks={},
        verifier=verifier(settings),
        max_body_bytes=settings.ai_max_body_bytes,
        service_name="ai",
    )
    replies_total = Counter(
        "ai_replies_total", "Replies by provider and source", ["provider", "source"],
        registry=metrics.registry,
    )  # fmt: skip

    @app.post("/v1/reply", response_model=ReplyResponse)
    async def reply(
        body: Annotated[ReplyRequest, Body()], caller: CurrentUser, response: Response
    ) -> ReplyResponse:
        """The assistant's reply to the conversation's recent messages (oldest first).

        For a service token (backend) or a signed-in user's access token; 401 for anyone else.
        """
        _check_limits(settings, body.messages)
        if limiter is not None:
            key, limit = budget(settings, caller)
            verdict = await limiter.hit(key, limit, settings.ai_rate_window_seconds)
            if not verdict.allowed:
                raise HTTPException(
                    status.HTTP_429_TOO_MANY_REQUESTS,
                    "too many requests; slow down",
                    headers={"Retry-After": verdict.retry_after_header},
                )
        # Only services share replies, each in a cache of its own: a cache hit tells whether
        # somebody sent these messages before, so a user (who may guess another's) gets none.
        shared = cache if _is_service(settings, caller) else None
        key = cache_key(caller_id(settings, caller), provider.name, provider.model, body.messages)
        if shared is not None and (hit := await shared.get(key)) is not None:
            replies_total.labels(provider=provider.name, source="cache").inc()
            return ReplyResponse(content=hit, model=provider.model, cached=True)
        try:
            content = await provider.reply(body.messages)
        except ProviderError as exc:
            raise HTTPException(exc.status, str(exc)) from exc
        if shared is not None:
            await shared.put(key, content)
        replies_total.labels(provider=provider.name, source="provider").inc()
        return ReplyResponse(content=content, model=provider.model, cached=False)

    return app
