"""The auth HTTP API (FastAPI). `create_app(settings)` builds it; `auth.main:app` serves it."""

from __future__ import annotations

import datetime as dt
import hmac
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, Form, HTTPException, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from servicekit.events import telemetry_if_wanted
from servicekit.fastapi import CurrentUser, docs_options, install
from servicekit.health import postgres_check, redis_check
from servicekit.jwt import AsyncJwtVerifier
from servicekit.logging import configure_logging
from servicekit.ratelimit import RateLimiter
from servicekit.redisconn import redis_client
from servicekit.settings import sqlalchemy_url
from servicekit.text import Text
from sqlalchemy import create_engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from auth import accounts
from auth.blocklist import RULE, password_problem
from auth.config import Settings
from auth.keys import KeyRing, load_keyring
from auth.models import User
from auth.tokens import issue_service_token

USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class Credentials(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=3, max_length=32, pattern=USERNAME_PATTERN)
    password: Text = Field(min_length=8, max_length=256, description=f"8 to 256 characters, {RULE}")

    @field_validator("password")
    @classmethod
    def _not_common(cls, password: str, info: ValidationInfo) -> str:
        problem = password_problem(password, str(info.data.get("username", "")))
        if problem is not None:
            raise ValueError(problem)
        return password


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: Text = Field(min_length=1, max_length=64)
    password: Text = Field(min_length=1, max_length=256)


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: Text = Field(min_length=1, max_length=256)


class UserOut(BaseModel):
    id: uuid.UUID
    username: str


class TokenResponse(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"  # noqa: S105 (the OAuth token type, not a secret)
    expires_in: int


class ServiceTokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 (the OAuth token type, not a secret)
    expires_in: int


class ClientCredentials(BaseModel):
    """RFC 6749 section 4.4, client authentication in the form (client_secret_post)."""

    model_config = ConfigDict(extra="forbid")

    grant_type: Literal["client_credentials"]
    client_id: Text = Field(min_length=1, max_length=64)
    client_secret: Text = Field(min_length=1, max_length=256)


def _known_client(settings: Settings, client_id: str, secret: str) -> bool:
    expected = settings.auth_service_clients.get(client_id)
    # Compared in constant time; an unknown client costs the same comparison.
    wanted = expected.get_secret_value() if expected else "\x00unknown-client"
    return hmac.compare_digest(wanted.encode(), secret.encode()) and expected is not None


def _user_out(user: User) -> UserOut:
    return UserOut(id=user.id, username=user.username)


def _tokens_out(pair: accounts.TokenPair) -> TokenResponse:
    return TokenResponse(
        access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in
    )


def _session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


def _keyring(request: Request) -> KeyRing:
    keyring: KeyRing = request.app.state.keyring
    return keyring


SessionDep = Annotated[Session, Depends(_session)]
KeyRingDep = Annotated[KeyRing, Depends(_keyring)]


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@dataclass
class _Spent:
    """What one request spent from rate-limit budgets, to hand back if it turns out not to count."""

    limiter: RateLimiter
    period: float
    budgets: list[tuple[str, int]] = field(default_factory=list)

    def refund(self) -> None:
        for key, limit in self.budgets:
            self.limiter.refund(key, limit, self.period)


def _spend(request: Request, budgets: list[tuple[str, int]]) -> _Spent:
    """One attempt from each (key, limit) budget; 429 with Retry-After when one is empty."""
    settings: Settings = request.app.state.settings
    spent = _Spent(request.app.state.limiter, settings.auth_rate_limit_period)
    for key, limit in budgets:
        result = spent.limiter.hit(key, limit, spent.period)
        if not result.allowed:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                detail="too many attempts; retry later",
                headers={"Retry-After": result.retry_after_header},
            )
        spent.budgets.append((key, limit))
    return spent


def _spend_attempt(request: Request, action: Literal["login", "register"], username: str) -> _Spent:
    """A login or registration against the client address's and the account's budgets.

    Spent before the work, so concurrent guesses cannot all pass before one is counted. A
    request the server could not serve (database down: 503) gets it all back from servicekit's
    middleware; a login that succeeds hands it back itself. Only the client's own failures stay
    spent. Without Redis the limiter fails closed (AUTH_RATE_LIMIT_FAIL_OPEN): no login.
    """
    settings: Settings = request.app.state.settings
    per_ip, per_account = {
        "login": (settings.auth_login_limit_per_ip, settings.auth_login_limit_per_account),
        "register": (settings.auth_register_limit_per_ip, settings.auth_register_limit_per_account),
    }[action]
    return _spend(
        request,
        [
            (f"{action}:ip:{_client_ip(request)}", per_ip),
            (f"{action}:account:{username.lower()}", per_account),
        ],
    )


def _service_client_failed(request: Request) -> HTTPException:
    """A wrong client secret costs the caller's address, never the client id: nobody can lock a
    service out. 401, or 429 once the address's budget is spent (or Redis is down)."""
    settings: Settings = request.app.state.settings
    _spend(request, [(f"token-failure:ip:{_client_ip(request)}", settings.auth_login_limit_per_ip)])
    return HTTPException(401, "invalid client credentials")


def _routes(app: FastAPI) -> None:
    @app.post("/register", status_code=status.HTTP_201_CREATED, responses={409: {}, 429: {}})
    def register(body: Credentials, request: Request, session: SessionDep) -> UserOut:
        _spend_attempt(request, "register", body.username)  # a new account counts too
        try:
            return _user_out(accounts.register(session, body.username, body.password))
        except accounts.UsernameTakenError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, "username already taken") from exc

    @app.post("/login", responses={401: {}, 429: {}})
    def login(
        body: LoginRequest, request: Request, session: SessionDep, keyring: KeyRingDep
    ) -> TokenResponse:
        settings: Settings = request.app.state.settings
        spent = _spend_attempt(request, "login", body.username)
        try:
            pair = accounts.login(session, keyring, settings, body.username, body.password)
        except accounts.InvalidCredentialsError as exc:
            raise HTTPException(401, "invalid username or password") from exc
        spent.refund()  # a login that succeeds costs nothing
        return _tokens_out(pair)

    @app.post("/refresh", responses={401: {}})
    def refresh(
        body: RefreshRequest, request: Request, session: SessionDep, keyring: KeyRingDep
    ) -> TokenResponse:
        settings: Settings = request.app.state.settings
        try:
            return _tokens_out(accounts.refresh(session, keyring, settings, body.refresh_token))
        except accounts.InvalidRefreshTokenError as exc:
            raise HTTPException(401, str(exc)) from exc

    @app.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
    def logout(body: RefreshRequest, session: SessionDep) -> Response:
        accounts.logout(session, body.refresh_token)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @app.post("/token", responses={401: {}, 429: {}})
    def service_token(
        body: Annotated[ClientCredentials, Form()], request: Request, keyring: KeyRingDep
    ) -> ServiceTokenResponse:
        """A service token for another service (client credentials), e.g. backend calling ai.

        The right secret always gets a token, whatever the limiter's budgets or Redis say
        (backend's replies depend on it); the secrets are random (192 bits), not guessable.
        """
        settings: Settings = request.app.state.settings
        if not _known_client(settings, body.client_id, body.client_secret):
            raise _service_client_failed(request)
        token = issue_service_token(
            keyring,
            client_id=body.client_id,
            issuer=settings.jwt_issuer,
            audience=settings.service_token_audience,
            ttl_seconds=settings.auth_service_token_ttl,
            now=dt.datetime.now(dt.UTC),
        )
        return ServiceTokenResponse(access_token=token, expires_in=settings.auth_service_token_ttl)

    @app.get("/me", responses={401: {}})
    def me(user: CurrentUser, session: SessionDep) -> UserOut:
        try:
            found = session.get(User, uuid.UUID(user.sub))
        except ValueError:  # a well-signed token whose sub is not one of our ids
            found = None
        if found is None:
            raise HTTPException(
                401, "user no longer exists", headers={"WWW-Authenticate": "Bearer"}
            )
        return _user_out(found)

    @app.get("/.well-known/jwks.json", tags=["keys"])
    def jwks(keyring: KeyRingDep, response: Response) -> dict[str, object]:
        response.headers["Cache-Control"] = "public, max-age=300"
        return keyring.jwks()


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": "database unavailable"}, status_code=503)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    redis_target = settings.redis_target()
    if not settings.database_url or redis_target is None:
        raise ValueError("DATABASE_URL and REDIS_URL (or REDIS_SENTINELS) must be set")
    configure_logging("auth", settings.log_level)
    keyring = load_keyring(settings)
    engine = create_engine(
        sqlalchemy_url(settings.database_url),
        pool_pre_ping=True,
        connect_args={"connect_timeout": 5, "options": "-c statement_timeout=10000"},
    )
    if telemetry := telemetry_if_wanted():  # OTEL_EXPORTER_OTLP_ENDPOINT set: SQL client spans
        telemetry.trace_engine(engine)
    redis = redis_client(redis_target)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        engine.dispose()
        redis.close()

    app = FastAPI(
        title="auth", version="0.1.0", lifespan=lifespan, **docs_options(settings.api_docs)
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.keyring = keyring
    app.state.sessions = sessionmaker(engine, expire_on_commit=False)
    app.state.limiter = RateLimiter(
        redis, prefix="auth", fail_open=settings.auth_rate_limit_fail_open
    )
    # auth verifies its own access tokens (GET /me) with its own public keys, without HTTP.
    verifier = AsyncJwtVerifier(
        static_jwks=keyring.jwks(), issuer=settings.jwt_issuer, audience=settings.jwt_audience
    )
    install(
        app,
        readiness_checks={"postgres": postgres_check(engine), "redis": redis_check(redis)},
        verifier=verifier,
        max_body_bytes=settings.auth_max_body_bytes,
        service_name="auth",
    )
    app.add_exception_handler(OperationalError, _database_unavailable)
    _routes(app)
    return app
