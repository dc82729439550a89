"""JWT verification against a real JWKS HTTP server (the harness's token_issuer)."""

from __future__ import annotations

import asyncio
import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from harness.servers import free_port
from harness.tokens import TokenIssuer
from servicekit.jwt import (
    AsyncJwtVerifier,
    BearerRejectedError,
    JwtVerifier,
    TokenError,
    verify_bearer,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def sync_verifier(issuer: TokenIssuer, **kwargs: Any) -> JwtVerifier:
    return JwtVerifier(issuer.jwks_url, issuer=issuer.issuer, audience=issuer.audience, **kwargs)


def async_verifier(issuer: TokenIssuer, **kwargs: Any) -> AsyncJwtVerifier:
    return AsyncJwtVerifier(
        issuer.jwks_url, issuer=issuer.issuer, audience=issuer.audience, **kwargs
    )


def test_sync_verifier_accepts_a_valid_token(token_issuer: TokenIssuer) -> None:
    token = token_issuer.issue("user-1", "alice")
    verified = sync_verifier(token_issuer).verify(token)
    assert (verified.sub, verified.name) == ("user-1", "alice")
    assert verified.claims["aud"] == "chat"


async def test_async_verifier_accepts_a_valid_token(token_issuer: TokenIssuer) -> None:
    verified = await async_verifier(token_issuer).verify(token_issuer.issue("user-2", "bob"))
    assert (verified.sub, verified.name) == ("user-2", "bob")


def reason_of(verifier: JwtVerifier, token: str) -> str:
    with pytest.raises(TokenError) as caught:
        verifier.verify(token)
    return caught.value.reason


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        # timedeltas are relative to the moment the token is issued (not to test collection)
        ({"exp": dt.timedelta(seconds=-5)}, "expired"),
        ({"nbf": dt.timedelta(minutes=5)}, "not_yet_valid"),
        ({"iss": "someone-else"}, "invalid_issuer"),
        ({"aud": "other-app"}, "invalid_audience"),
        ({"exp": None}, "missing_claim"),
        ({"nbf": None}, "missing_claim"),
        ({"iat": None}, "missing_claim"),
        ({"aud": None}, "missing_claim"),
    ],
)
def test_claims_are_checked(
    token_issuer: TokenIssuer, overrides: dict[str, Any], reason: str
) -> None:
    now = dt.datetime.now(dt.UTC)
    claims: dict[str, Any] = {
        k: now + v if isinstance(v, dt.timedelta) else v for k, v in overrides.items()
    }
    token = token_issuer.issue("user-1", "alice", **claims)
    assert reason_of(sync_verifier(token_issuer), token) == reason


def test_signature_by_an_unpublished_key_is_rejected(token_issuer: TokenIssuer) -> None:
    forged = token_issuer.issue("user-1", "alice", key=Ed25519PrivateKey.generate())
    assert reason_of(sync_verifier(token_issuer), forged) == "invalid_signature"


def test_other_algorithms_are_rejected(token_issuer: TokenIssuer) -> None:
    import jwt

    hs256 = jwt.encode(
        {"sub": "x"}, "a-shared-secret-of-32-bytes-long!", algorithm="HS256", headers={"kid": "k"}
    )
    assert reason_of(sync_verifier(token_issuer), hs256) == "algorithm_not_allowed"
    unsigned = jwt.encode({"sub": "x"}, "", algorithm="none", headers={"kid": "k"})
    assert reason_of(sync_verifier(token_issuer), unsigned) == "algorithm_not_allowed"


def test_garbage_and_missing_kid_are_rejected(token_issuer: TokenIssuer) -> None:
    verifier = sync_verifier(token_issuer)
    assert reason_of(verifier, "not.a.jwt") == "malformed"
    no_kid = token_issuer.issue("u", "n", kid="")
    assert reason_of(verifier, no_kid) == "missing_kid"


def test_jwks_is_cached_within_the_ttl(token_issuer: TokenIssuer) -> None:
    verifier = sync_verifier(token_issuer)
    for _ in range(5):
        verifier.verify(token_issuer.issue("u", "n"))
    assert token_issuer.jwks_requests == 1


def test_jwks_is_refetched_after_the_ttl(token_issuer: TokenIssuer) -> None:
    clock = FakeClock()
    verifier = sync_verifier(token_issuer, ttl=60, clock=clock)
    verifier.verify(token_issuer.issue("u", "n"))
    clock.now += 61
    verifier.verify(token_issuer.issue("u", "n"))
    assert token_issuer.jwks_requests == 2


def test_unknown_kid_triggers_a_refresh(token_issuer: TokenIssuer) -> None:
    clock = FakeClock()
    verifier = sync_verifier(token_issuer, min_refresh_interval=10, clock=clock)
    old_token = token_issuer.issue("u", "n")
    verifier.verify(old_token)
    token_issuer.add_key()  # rotation: the new key signs, the old one stays published
    clock.now += 11
    assert verifier.verify(token_issuer.issue("u", "n")).sub == "u"
    assert verifier.verify(old_token).sub == "u"
    assert token_issuer.jwks_requests == 2


def test_a_flood_of_unknown_kids_fetches_at_most_once_per_interval(
    token_issuer: TokenIssuer,
) -> None:
    clock = FakeClock()
    verifier = sync_verifier(token_issuer, min_refresh_interval=10, clock=clock)
    verifier.verify(token_issuer.issue("u", "n"))
    for number in range(50):
        bogus = token_issuer.issue("u", "n", kid=f"bogus-{number}")
        assert reason_of(verifier, bogus) == "unknown_kid"
    assert token_issuer.jwks_requests == 1
    clock.now += 10
    assert reason_of(verifier, token_issuer.issue("u", "n", kid="bogus-late")) == "unknown_kid"
    assert token_issuer.jwks_requests == 2


async def test_async_refresh_on_unknown_kid(token_issuer: TokenIssuer) -> None:
    clock = FakeClock()
    verifier = async_verifier(token_issuer, min_refresh_interval=5, clock=clock)
    await verifier.verify(token_issuer.issue("u", "n"))
    token_issuer.add_key()
    clock.now += 5
    assert (await verifier.verify(token_issuer.issue("u", "n"))).sub == "u"
    assert token_issuer.jwks_requests == 2


def test_unreachable_jwks_is_reported_as_unavailable() -> None:
    url = f"http://127.0.0.1:{free_port()}/.well-known/jwks.json"
    issuer = TokenIssuer()
    try:
        verifier = JwtVerifier(url, issuer=issuer.issuer, audience=issuer.audience, timeout=1)
        assert reason_of(verifier, issuer.issue("u", "n")) == "jwks_unavailable"
    finally:
        issuer.close()


def test_stale_keys_stay_in_use_when_the_jwks_server_goes_away(
    token_issuer: TokenIssuer,
) -> None:
    clock = FakeClock()
    verifier = sync_verifier(token_issuer, ttl=60, clock=clock, timeout=1)
    token = token_issuer.issue("u", "n")
    verifier.verify(token)
    token_issuer.close()
    clock.now += 120
    assert verifier.verify(token).sub == "u"


def test_static_jwks_needs_no_server(token_issuer: TokenIssuer) -> None:
    verifier = JwtVerifier(
        static_jwks=token_issuer.jwks(), issuer=token_issuer.issuer, audience="chat"
    )
    assert verifier.verify(token_issuer.issue("u", "n")).name == "n"
    assert token_issuer.jwks_requests == 0
    assert reason_of(verifier, token_issuer.issue("u", "n", kid="nope")) == "unknown_kid"


async def test_concurrent_first_verifications_share_one_fetch(token_issuer: TokenIssuer) -> None:
    token_issuer.jwks_delay = 0.3  # the first fetch is still running when the others arrive
    verifier = async_verifier(token_issuer)
    tokens = [token_issuer.issue(f"user-{n}", "n") for n in range(20)]
    verified = await asyncio.gather(*(verifier.verify(token) for token in tokens))
    assert [v.sub for v in verified] == [f"user-{n}" for n in range(20)]
    assert token_issuer.jwks_requests == 1


def test_concurrent_first_verifications_share_one_fetch_across_threads(
    token_issuer: TokenIssuer,
) -> None:
    token_issuer.jwks_delay = 0.3
    verifier = sync_verifier(token_issuer)
    tokens = [token_issuer.issue(f"user-{n}", "n") for n in range(10)]
    with ThreadPoolExecutor(max_workers=len(tokens)) as pool:
        subs = list(pool.map(lambda token: verifier.verify(token).sub, tokens))
    assert subs == [f"user-{n}" for n in range(10)]
    assert token_issuer.jwks_requests == 1


async def test_a_rotated_key_is_awaited_by_concurrent_verifications(
    token_issuer: TokenIssuer,
) -> None:
    clock = FakeClock()
    verifier = async_verifier(token_issuer, min_refresh_interval=10, clock=clock)
    await verifier.verify(token_issuer.issue("u", "n"))
    token_issuer.add_key()
    token_issuer.jwks_delay = 0.3
    clock.now += 11
    tokens = [token_issuer.issue(f"user-{n}", "n") for n in range(10)]
    verified = await asyncio.gather(*(verifier.verify(token) for token in tokens))
    assert len(verified) == 10
    assert token_issuer.jwks_requests == 2


async def test_waiters_fetch_again_when_the_fetch_in_flight_is_cancelled(
    token_issuer: TokenIssuer,
) -> None:
    token_issuer.jwks_delay = 0.5
    verifier = async_verifier(token_issuer)
    first = asyncio.create_task(verifier.verify(token_issuer.issue("u", "n")))
    await asyncio.sleep(0.1)  # the first task's fetch is in flight
    second = asyncio.create_task(verifier.verify(token_issuer.issue("v", "n")))
    await asyncio.sleep(0.1)  # the second task waits for it
    first.cancel()
    assert (await second).sub == "v"  # not `jwks_unavailable` for the whole interval
    with pytest.raises(asyncio.CancelledError):
        await first
    assert token_issuer.jwks_requests == 2


def rejection_of(verifier: JwtVerifier, authorization: str | None) -> BearerRejectedError:
    with pytest.raises(BearerRejectedError) as caught:
        verify_bearer(verifier, authorization)
    return caught.value


@pytest.mark.parametrize("authorization", [None, "", "Bearer ", "Basic dXNlcjpwdw==", "token"])
def test_a_missing_bearer_token_is_401_with_a_challenge(
    token_issuer: TokenIssuer, authorization: str | None
) -> None:
    rejected = rejection_of(sync_verifier(token_issuer), authorization)
    assert (rejected.status, rejected.detail) == (401, "missing bearer token")
    assert rejected.headers == {"WWW-Authenticate": "Bearer"}
    assert token_issuer.jwks_requests == 0


def test_verify_bearer_maps_token_errors_to_answers(token_issuer: TokenIssuer) -> None:
    verifier = sync_verifier(token_issuer)
    good = token_issuer.issue("user-1", "alice")
    assert verify_bearer(verifier, f"bearer  {good} ").sub == "user-1"  # scheme is case-blind
    expired = token_issuer.issue("u", "n", exp=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5))
    rejected = rejection_of(verifier, f"Bearer {expired}")
    assert (rejected.status, rejected.detail) == (401, "invalid token: expired")
    assert rejected.headers == {"WWW-Authenticate": 'Bearer error="invalid_token"'}

    url = f"http://127.0.0.1:{free_port()}/.well-known/jwks.json"
    offline = JwtVerifier(url, issuer=token_issuer.issuer, audience="chat", timeout=1)
    rejected = rejection_of(offline, f"Bearer {good}")
    assert (rejected.status, rejected.headers) == (503, {})


def test_the_issuers_bearer_header_carries_a_verifiable_token(token_issuer: TokenIssuer) -> None:
    header = token_issuer.bearer("user-5", "eve")
    assert verify_bearer(sync_verifier(token_issuer), header["Authorization"]).sub == "user-5"
