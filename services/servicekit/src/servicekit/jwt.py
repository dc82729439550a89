"""Verification of the auth service's access tokens against its JWKS.

One core (`_KeyCache` + `_decode`) holds every decision: when to fetch the JWKS (TTL expired,
or an unknown `kid` and the last fetch is older than `min_refresh_interval`, so a flood of
made-up kids cannot hammer auth), that at most one fetch runs at a time and verifications that
need fresh keys wait for it (single-flight: without that, requests arriving during the first
fetch found no keys and failed), the pinned algorithm, and which claims are required. The sync
(`JwtVerifier`, Flask/Django) and async (`AsyncJwtVerifier`, FastAPI) classes only differ in
how they fetch with httpx and how they wait for the fetch in flight.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt

logger = logging.getLogger(__name__)

ALGORITHM = "EdDSA"
REQUIRED_CLAIMS = ("exp", "nbf", "iat", "iss", "aud", "sub")


class TokenError(Exception):
    """A token was rejected. `reason` is a short machine-readable code, e.g. `expired`.

    `reason == "jwks_unavailable"` means the keys could not be fetched at all (a server-side
    problem, answer 503); every other reason is the client's problem (answer 401).
    """

    def __init__(self, reason: str, message: str | None = None) -> None:
        super().__init__(message or reason)
        self.reason = reason


@dataclass(frozen=True)
class VerifiedToken:
    """The claims of a verified access token."""

    sub: str
    name: str
    claims: Mapping[str, Any]


class _Step(enum.Enum):
    """What a verification does before decoding (see `_KeyCache.plan`)."""

    USE = "use"  # decode with the keys at hand
    FETCH = "fetch"  # fetch the JWKS, then call `end_fetch`
    WAIT = "wait"  # another verification's fetch is in flight: wait for it, then plan again


@dataclass
class _KeyCache:
    """The JWKS keys by kid and the rules for refreshing them (no I/O, no waiting here).

    Front-ends call `plan` and `end_fetch` while holding their own lock (the async one runs
    them between awaits), so `in_flight` is the single-flight flag for both.
    """

    ttl: float
    min_refresh_interval: float
    clock: Callable[[], float]
    keys: dict[str, jwt.PyJWK] = field(default_factory=dict)
    fetched_at: float | None = None
    attempted_at: float | None = None
    static: bool = False
    in_flight: bool = False
    _attempted_before: float | None = None

    def wants_fresh_keys(self, kid: str) -> bool:
        """Never fetched, keys past the TTL, or a kid the keys do not have."""
        if self.static:
            return False
        if self.fetched_at is None or self.clock() - self.fetched_at >= self.ttl:
            return True
        return kid not in self.keys

    def needs_fetch(self, kid: str) -> bool:
        if not self.wants_fresh_keys(kid):
            return False
        # Retry, but not more often than the minimum interval.
        return (
            self.attempted_at is None
            or self.clock() - self.attempted_at >= self.min_refresh_interval
        )

    def plan(self, kid: str) -> _Step:
        if self.in_flight:
            return _Step.WAIT if self.wants_fresh_keys(kid) else _Step.USE
        if not self.needs_fetch(kid):
            return _Step.USE
        self.in_flight = True
        self._attempted_before = self.attempted_at
        self.attempted_at = self.clock()
        return _Step.FETCH

    def end_fetch(self, *, abandoned: bool = False) -> None:
        """The fetch finished (keys installed or failure logged) or was abandoned (cancelled).

        An abandoned fetch does not count as an attempt, so the next verification (or a
        waiter planning again) fetches instead of failing until the interval has passed.
        """
        self.in_flight = False
        if abandoned:
            self.attempted_at = self._attempted_before

    def install(self, document: Any) -> None:
        self.keys = parse_jwks(document)
        self.fetched_at = self.clock()

    def key_for(self, kid: str) -> jwt.PyJWK:
        key = self.keys.get(kid)
        if key is not None:
            return key
        if not self.keys and not self.static:
            raise TokenError("jwks_unavailable", "the signing keys could not be fetched")
        raise TokenError("unknown_kid", f"no published key has kid {kid!r}")


def parse_jwks(document: Any) -> dict[str, jwt.PyJWK]:
    """Usable Ed25519 keys of a JWKS document by kid; other keys are skipped with a warning."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("a JWKS document must be an object with a `keys` list")
    keys: dict[str, jwt.PyJWK] = {}
    for entry in document["keys"]:
        kid = entry.get("kid") if isinstance(entry, dict) else None
        if not isinstance(kid, str) or entry.get("kty") != "OKP" or entry.get("crv") != "Ed25519":
            logger.warning("skipping JWKS entry that is not an Ed25519 key with a kid")
            continue
        try:
            keys[kid] = jwt.PyJWK(entry, algorithm=ALGORITHM)
        except jwt.PyJWTError as exc:
            logger.warning("skipping unusable JWKS key", extra={"kid": kid, "error": str(exc)})
    return keys


def _kid_of(token: str) -> str:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise TokenError("malformed", "the token is not a well-formed JWT") from exc
    if header.get("alg") != ALGORITHM:
        raise TokenError("algorithm_not_allowed", f"only {ALGORITHM} tokens are accepted")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise TokenError("missing_kid", "the token header has no kid")
    return kid


_REASONS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "expired"),
    (jwt.ImmatureSignatureError, "not_yet_valid"),
    (jwt.InvalidIssuerError, "invalid_issuer"),
    (jwt.InvalidAudienceError, "invalid_audience"),
    (jwt.MissingRequiredClaimError, "missing_claim"),
    (jwt.InvalidSignatureError, "invalid_signature"),
    (jwt.InvalidAlgorithmError, "algorithm_not_allowed"),
    (jwt.DecodeError, "malformed"),
)


class _VerifierBase:
    def __init__(
        self,
        jwks_url: str | None,
        *,
        issuer: str,
        audience: str | Sequence[str],
        static_jwks: Mapping[str, Any] | None = None,
        ttl: float = 300.0,
        min_refresh_interval: float = 10.0,
        timeout: float = 3.0,
        leeway: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if (jwks_url is None) == (static_jwks is None):
            raise ValueError("give exactly one of jwks_url and static_jwks")
        self.jwks_url = jwks_url
        self.issuer = issuer
        # Several audiences: a token for any one of them is accepted (ai takes users and services).
        self.audience = audience if isinstance(audience, str) else list(audience)
        self.timeout = timeout
        self.leeway = leeway
        self._cache = _KeyCache(ttl, min_refresh_interval, clock, static=static_jwks is not None)
        if static_jwks is not None:
            self._cache.install(dict(static_jwks))

    def _decode(self, token: str, kid: str) -> VerifiedToken:
        key = self._cache.key_for(kid)
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.PyJWTError as exc:
            raise TokenError(_reason_of(exc), str(exc)) from exc
        return VerifiedToken(
            sub=str(claims["sub"]), name=str(claims.get("name", "")), claims=claims
        )

    def _settle(self, outcome: object) -> None:
        """End the fetch in flight with its outcome: a JWKS document, an error, or abandoned."""
        if outcome is _ABANDONED:
            self._cache.end_fetch(abandoned=True)
            return
        if isinstance(outcome, Exception):
            self._fetch_failed(outcome)
        else:
            try:
                self._cache.install(outcome)
            except ValueError as exc:
                self._fetch_failed(exc)
        self._cache.end_fetch()

    def _fetch_failed(self, exc: Exception) -> None:
        # Stale keys stay in use: an auth outage must not log everybody out.
        logger.warning("JWKS fetch failed", extra={"jwks_url": self.jwks_url, "error": repr(exc)})


def _document_of(response: httpx.Response) -> Any:
    response.raise_for_status()
    return response.json()


_ABANDONED = object()  # the fetch never finished (cancelled, interrupted)


def _reason_of(exc: jwt.PyJWTError) -> str:
    for kind, reason in _REASONS:
        if isinstance(exc, kind):
            return reason
    return "invalid"


_FETCH_ERRORS = (httpx.HTTPError, ValueError)


class JwtVerifier(_VerifierBase):
    """Thread-safe synchronous verifier (Flask, Django, workers)."""

    def __init__(self, jwks_url: str | None = None, **kwargs: Any) -> None:
        super().__init__(jwks_url, **kwargs)
        self._fetch_done = threading.Condition()  # guards the cache's state, wakes waiters

    def verify(self, token: str) -> VerifiedToken:
        kid = _kid_of(token)
        with self._fetch_done:
            step = self._cache.plan(kid)
            while step is _Step.WAIT:
                self._fetch_done.wait()
                step = self._cache.plan(kid)
        if step is _Step.FETCH:
            self._fetch()
        return self._decode(token, kid)

    def _fetch(self) -> None:
        assert self.jwks_url is not None
        outcome: object = _ABANDONED
        try:
            outcome = _document_of(httpx.get(self.jwks_url, timeout=self.timeout))
        except _FETCH_ERRORS as exc:
            outcome = exc
        finally:
            with self._fetch_done:
                self._settle(outcome)
                self._fetch_done.notify_all()


class AsyncJwtVerifier(_VerifierBase):
    """Asynchronous verifier (FastAPI); one fetch at a time per verifier, the others wait."""

    def __init__(self, jwks_url: str | None = None, **kwargs: Any) -> None:
        super().__init__(jwks_url, **kwargs)
        self._flight: asyncio.Future[None] | None = None  # done when the fetch in flight ends

    async def verify(self, token: str) -> VerifiedToken:
        kid = _kid_of(token)
        # No lock needed: plan and settle run between awaits on the one event loop.
        step = self._cache.plan(kid)
        while step is _Step.WAIT:
            assert self._flight is not None
            # shield: a waiter that is cancelled must not cancel the shared fetch's future
            await asyncio.shield(self._flight)
            step = self._cache.plan(kid)
        if step is _Step.FETCH:
            await self._fetch()
        return self._decode(token, kid)

    async def _fetch(self) -> None:
        assert self.jwks_url is not None
        flight = self._flight = asyncio.get_running_loop().create_future()
        outcome: object = _ABANDONED
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                outcome = _document_of(await client.get(self.jwks_url))
        except _FETCH_ERRORS as exc:
            outcome = exc
        finally:
            self._settle(outcome)
            flight.set_result(None)


class BearerRejectedError(Exception):
    """A request's bearer token is refused: answer `status` with `{"detail": detail}` + `headers`.

    The one mapping every framework adapter uses: no/garbled `Authorization` or a rejected token
    -> 401 with a `WWW-Authenticate` challenge; keys that could not be fetched -> 503.
    """

    def __init__(self, status: int, detail: str, headers: Mapping[str, str]) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = dict(headers)

    @classmethod
    def missing(cls) -> BearerRejectedError:
        return cls(401, "missing bearer token", {"WWW-Authenticate": "Bearer"})

    @classmethod
    def for_token_error(cls, exc: TokenError) -> BearerRejectedError:
        if exc.reason == "jwks_unavailable":
            return cls(503, "token keys are unavailable, try again later", {})
        challenge = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
        return cls(401, f"invalid token: {exc.reason}", challenge)


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` value; `BearerRejectedError` otherwise."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise BearerRejectedError.missing()
    return token.strip()


def verify_bearer(verifier: JwtVerifier, authorization: str | None) -> VerifiedToken:
    """Sync frameworks (Flask, Django): the verified user of an `Authorization` header value.

    Raises `BearerRejectedError` (answer its status, detail and headers) for anything else.
    """
    token = bearer_token(authorization)
    try:
        return verifier.verify(token)
    except TokenError as exc:
        raise BearerRejectedError.for_token_error(exc) from exc
