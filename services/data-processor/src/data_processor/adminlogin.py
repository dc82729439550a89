"""The admin's login, limited: attempts per account and per client address (Redis, GCRA).

Django's admin asks for a staff login but never slows down a password guesser. POSTs to the
login page spend one attempt from the account's and the client address's budgets; an empty
budget answers 429 with Retry-After, whatever the password. Only failures stay spent: a login
that succeeds, or that the server could not serve (5xx), hands its attempt back. Without Redis
the login fails closed (429): no brute-force protection, no login. The client address is the
peer, or the one a trusted proxy (FORWARDED_ALLOW_IPS) names in X-Forwarded-For.
"""

from __future__ import annotations

from functools import cache

from django.conf import settings
from django.contrib import admin
from django.contrib.auth.forms import UsernameField
from django.http import HttpRequest, HttpResponse, JsonResponse
from servicekit.clientip import client_address
from servicekit.ratelimit import RateLimiter
from servicekit.redisconn import RedisTarget, redis_client


@cache
def _limiter(target: RedisTarget) -> RateLimiter:
    return RateLimiter(redis_client(target), prefix="stats:admin-login", fail_open=False)


def limited_login(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return admin.site.login(request)
    spent = _spend_attempt(request)
    if isinstance(spent, HttpResponse):
        return spent
    try:
        response = admin.site.login(request)
    except Exception:  # not served (e.g. PostgreSQL down): costs nothing
        _refund(spent)
        raise
    if response.status_code == 302 or response.status_code >= 500:  # logged in, or not served
        _refund(spent)
    return response


def _spend_attempt(request: HttpRequest) -> list[tuple[str, int]] | HttpResponse:
    """One attempt from the account's and the address's budgets: what was spent, or a 429."""
    limiter = _limiter(settings.REDIS)
    username = _account_key(str(request.POST.get("username", "")))
    address = client_address(
        request.META.get("REMOTE_ADDR", ""), request.META.get("HTTP_X_FORWARDED_FOR")
    )
    spent: list[tuple[str, int]] = []
    for key, limit in (
        (f"account:{username}", settings.ADMIN_LOGIN_LIMIT_PER_ACCOUNT),
        (f"ip:{address}", settings.ADMIN_LOGIN_LIMIT_PER_IP),
    ):
        verdict = limiter.hit(key, limit, settings.ADMIN_LOGIN_PERIOD_SECONDS)
        if not verdict.allowed:
            response = JsonResponse({"detail": "too many login attempts; retry later"}, status=429)
            response["Retry-After"] = verdict.retry_after_header
            return response
        spent.append((key, limit))
    return spent


def _refund(spent: list[tuple[str, int]]) -> None:
    limiter = _limiter(settings.REDIS)
    for key, limit in spent:
        limiter.refund(key, limit, settings.ADMIN_LOGIN_PERIOD_SECONDS)


def _account_key(typed: str) -> str:
    """The name as the login form reads it (stripped, NFKC: the fullwidth forms of "root" are
    "root"), lower-cased, so look-alike spellings of one account share its budget."""
    return str(UsernameField().to_python(typed)).lower()
