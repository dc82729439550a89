"""JSON endpoints: per-user statistics, health, readiness (with consumer lag) and metrics."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Sum
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from servicekit.health import liveness, redis_check, run_checks_sync
from servicekit.jwt import BearerRejectedError, JwtVerifier, VerifiedToken, verify_bearer
from servicekit.metrics import came_through_a_proxy

from data_processor.lag import GroupLag
from data_processor.models import ConversationActivity, DailyMessageCount
from data_processor.observability import current_lag, http_metrics, shared_redis

PER_DAY_DEFAULT_DAYS = 30
PER_DAY_MAX_DAYS = 366

_verifiers: dict[tuple[str, str, str], JwtVerifier] = {}
_verifiers_lock = threading.Lock()


class ConsumerLagTooHighError(RuntimeError):
    pass


def _error(status: int, detail: str, **headers: str) -> JsonResponse:
    response = JsonResponse({"detail": detail}, status=status)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def _verifier() -> JwtVerifier:
    if not settings.JWKS_URL:
        raise RuntimeError("JWKS_URL must be set (the auth service's /.well-known/jwks.json)")
    key = (settings.JWKS_URL, settings.JWT_ISSUER, settings.JWT_AUDIENCE)
    with _verifiers_lock:
        if key not in _verifiers:
            _verifiers[key] = JwtVerifier(key[0], issuer=key[1], audience=key[2])
        return _verifiers[key]


def _authenticate(request: HttpRequest) -> VerifiedToken | JsonResponse:
    try:
        return verify_bearer(_verifier(), request.headers.get("Authorization"))
    except BearerRejectedError as rejected:
        return _error(rejected.status, rejected.detail, **rejected.headers)


@require_GET
def stats_me(request: HttpRequest) -> JsonResponse:
    user = _authenticate(request)
    if isinstance(user, JsonResponse):
        return user
    try:
        user_id = uuid.UUID(user.sub)
    except ValueError:
        return _error(401, "invalid token: subject is not a user id")
    days = _days_param(request)
    if days is None:
        return _error(400, f"query parameter 'days' must be an integer 1-{PER_DAY_MAX_DAYS}")
    today = timezone.now().astimezone(dt.UTC).date()
    counts = DailyMessageCount.objects.filter(user_id=user_id)
    total = counts.aggregate(total=Sum("count"))["total"] or 0
    recent = counts.filter(day__gt=today - dt.timedelta(days=days)).order_by("day")
    active_since = timezone.now() - dt.timedelta(days=settings.STATS_ACTIVE_DAYS)
    active = ConversationActivity.objects.filter(
        user_id=user_id, last_message_at__gte=active_since
    ).count()
    return JsonResponse(
        {
            "user_id": str(user_id),
            "total_messages": total,
            "per_day": [{"day": row.day.isoformat(), "count": row.count} for row in recent],
            "active_conversations": active,
        }
    )


def _days_param(request: HttpRequest) -> int | None:
    raw = request.GET.get("days", str(PER_DAY_DEFAULT_DAYS))
    # ASCII digits only: str.isdigit() also takes "²" and "①", which int() then refuses.
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= PER_DAY_MAX_DAYS:
        return None
    return int(raw)


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    report = liveness()
    return JsonResponse(report.body, status=report.status_code)


@require_GET
def ready(request: HttpRequest) -> JsonResponse:
    observed: dict[str, GroupLag] = {}

    def consumer_lag() -> None:
        state = observed["lag"] = current_lag()
        if state.lag > settings.STATS_MAX_CONSUMER_LAG:
            raise ConsumerLagTooHighError(
                f"consumer lag {state.lag} exceeds {settings.STATS_MAX_CONSUMER_LAG}"
            )

    report = run_checks_sync(
        {
            "postgres": _postgres_check,
            # The process's one client: with Sentinel, no new Sentinel connections per probe.
            "redis": redis_check(shared_redis()),
            "consumer_lag": consumer_lag,
        }
    )
    body: dict[str, Any] = dict(report.body)
    state = observed.get("lag")
    body["consumer"] = {
        "lag": state.lag if state else None,
        "pending": state.pending if state else None,
        "max_lag": settings.STATS_MAX_CONSUMER_LAG,
        "group_exists": state.group_exists if state else None,
    }
    return JsonResponse(body, status=report.status_code)


def _postgres_check() -> None:
    """SELECT 1 on this thread's own Django connection, closed again (checks run in threads)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        connection.close()


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if came_through_a_proxy(request.headers.get):
        return _error(404, "not found")
    body, content_type = http_metrics.render()
    return HttpResponse(body, content_type=content_type)


def not_found(request: HttpRequest, exception: Exception) -> JsonResponse:
    return _error(404, "not found")


def server_error(request: HttpRequest) -> JsonResponse:
    return _error(500, "internal server error")
