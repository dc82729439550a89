"""HTTP endpoints through Django's test client (real PostgreSQL, Redis and JWKS server)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pytest
import redis
from data_processor.events import apply_event, parse_event
from django.contrib.auth.models import User
from django.db import connections
from django.test import Client
from django.test.utils import override_settings
from django.utils import timezone
from harness.servers import PostgresServer, RedisServer
from harness.tokens import TokenIssuer
from servicekit.redisconn import RedisTarget

STREAM = "chat:events"
GROUP = "data-processor"


def bearer(token_issuer: TokenIssuer, user: uuid.UUID) -> dict[str, str]:
    return token_issuer.bearer(str(user), "someone")


def record_message(user: uuid.UUID, conversation: uuid.UUID, at: dt.datetime) -> None:
    fields = {
        "event_id": str(uuid.uuid4()),
        "type": "message.created",
        "conversation_id": str(conversation),
        "message_id": str(uuid.uuid4()),
        "user_id": str(user),
        "role": "user",
        "created_at": at.isoformat(),
    }
    apply_event(parse_event(fields), "1-0")


def body(response: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(response.content)
    return data


def test_stats_me_reports_only_the_callers_statistics(
    stats_db: str, stats_settings: dict[str, Any], token_issuer: TokenIssuer
) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    now = timezone.now()
    chat, old_chat = uuid.uuid4(), uuid.uuid4()
    record_message(alice, chat, now)
    record_message(alice, chat, now - dt.timedelta(days=1))
    record_message(alice, old_chat, now - dt.timedelta(days=20))  # counted, no longer active
    record_message(bob, uuid.uuid4(), now)

    response = Client().get("/stats/me", headers=bearer(token_issuer, alice))
    assert response.status_code == 200
    stats = body(response)
    today = now.astimezone(dt.UTC).date()
    assert stats == {
        "user_id": str(alice),
        "total_messages": 3,
        "per_day": [
            {"day": (today - dt.timedelta(days=20)).isoformat(), "count": 1},
            {"day": (today - dt.timedelta(days=1)).isoformat(), "count": 1},
            {"day": today.isoformat(), "count": 1},
        ],
        "active_conversations": 1,
    }
    recent = body(Client().get("/stats/me?days=7", headers=bearer(token_issuer, alice)))
    assert len(recent["per_day"]) == 2
    assert recent["total_messages"] == 3

    stranger = body(Client().get("/stats/me", headers=bearer(token_issuer, uuid.uuid4())))
    assert stranger["total_messages"] == 0
    assert stranger["per_day"] == []


@pytest.mark.parametrize("days", ["0", "abc", "-1", "367"])
def test_stats_me_rejects_a_bad_days_parameter(
    stats_db: str, stats_settings: dict[str, Any], token_issuer: TokenIssuer, days: str
) -> None:
    response = Client().get(f"/stats/me?days={days}", headers=bearer(token_issuer, uuid.uuid4()))
    assert response.status_code == 400
    assert "days" in body(response)["detail"]


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer not-a-jwt", "Basic eDp5"])
def test_stats_me_needs_a_valid_token(
    stats_db: str, stats_settings: dict[str, Any], header: str | None
) -> None:
    headers = {"Authorization": header} if header else {}
    response = Client().get("/stats/me", headers=headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert body(response)["detail"]


def test_expired_token_is_refused(
    stats_db: str, stats_settings: dict[str, Any], token_issuer: TokenIssuer
) -> None:
    token = token_issuer.issue(str(uuid.uuid4()), "old", exp=1)
    response = Client().get("/stats/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert "expired" in body(response)["detail"]


def test_ready_reports_consumer_lag_and_fails_beyond_the_threshold(
    stats_db: str, stats_settings: dict[str, Any], redis_client: redis.Redis
) -> None:
    client = Client()
    ready = client.get("/ready")
    assert ready.status_code == 200, ready.content
    assert body(ready)["consumer"]["lag"] == 0

    redis_client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    for index in range(5):
        redis_client.xadd(STREAM, {"event_id": str(index), "type": "noop"})
    with override_settings(STATS_MAX_CONSUMER_LAG=3):
        lagging = client.get("/ready")
        assert lagging.status_code == 503
        report = body(lagging)
        assert report["checks"]["consumer_lag"]["status"] == "error"
        assert report["checks"]["postgres"]["status"] == "ok"
        assert report["consumer"]["lag"] == 5
        # The consumer catches up on three of them: lag 2 is within the threshold.
        redis_client.xreadgroup(GROUP, "c1", {STREAM: ">"}, count=3)
        recovered = client.get("/ready")
        assert recovered.status_code == 200
        assert body(recovered)["consumer"] == {
            "lag": 2,
            "pending": 3,
            "max_lag": 3,
            "group_exists": True,
        }


def test_ready_fails_while_redis_is_down_and_recovers(
    stats_db: str, stats_settings: dict[str, Any], private_redis: RedisServer
) -> None:
    with override_settings(REDIS=RedisTarget(url=private_redis.url())):
        client = Client()
        assert client.get("/ready").status_code == 200
        private_redis.stop()
        down = client.get("/ready")
        assert down.status_code == 503
        assert body(down)["checks"]["redis"]["status"] == "error"
        private_redis.start()
        assert client.get("/ready").status_code == 200


def test_ready_fails_while_postgres_is_down_and_recovers(
    stats_db: str, stats_settings: dict[str, Any], private_postgres: PostgresServer
) -> None:
    connection = connections["default"]
    saved = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict.update(
        {
            "NAME": "postgres",
            "USER": private_postgres.user,
            "HOST": "127.0.0.1",
            "PORT": str(private_postgres.port),
            "PASSWORD": "",
        }
    )
    try:
        client = Client()
        assert client.get("/ready").status_code == 200
        private_postgres.stop()
        down = client.get("/ready")
        assert down.status_code == 503
        assert body(down)["checks"]["postgres"]["status"] == "error"
        private_postgres.start()
        assert client.get("/ready").status_code == 200
    finally:
        connection.close()
        connection.settings_dict.update(saved)


def test_health_and_metrics(
    stats_db: str, stats_settings: dict[str, Any], redis_client: redis.Redis
) -> None:
    client = Client()
    assert body(client.get("/health")) == {"status": "ok"}
    redis_client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    redis_client.xadd(STREAM, {"event_id": "1", "type": "noop"})
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    text = metrics.content.decode()
    assert "data_processor_consumer_lag 1.0" in text
    assert "data_processor_stream_length 1.0" in text
    assert 'http_requests_total{method="GET",route="/health",status="200"}' in text
    assert metrics["X-Request-ID"]


def test_unknown_paths_get_json_404(stats_db: str, stats_settings: dict[str, Any]) -> None:
    response = Client().get("/nope")
    assert response.status_code == 404
    assert body(response) == {"detail": "not found"}


def test_admin_requires_a_staff_login(stats_db: str, stats_settings: dict[str, Any]) -> None:
    anonymous = Client().get("/admin/data_processor/dailymessagecount/")
    assert anonymous.status_code == 302
    assert "/admin/login/" in anonymous["Location"]

    User.objects.create_user("plain", password="a-long-password-1")
    plain = Client()
    plain.post("/admin/login/", {"username": "plain", "password": "a-long-password-1"})
    assert plain.get("/admin/data_processor/dailymessagecount/").status_code == 302

    User.objects.create_superuser("staff", password="a-long-password-2")
    staff = Client()
    login = staff.post("/admin/login/", {"username": "staff", "password": "a-long-password-2"})
    assert login.status_code == 302
    record_message(uuid.uuid4(), uuid.uuid4(), timezone.now())
    page = staff.get("/admin/data_processor/dailymessagecount/")
    assert page.status_code == 200
    assert b"1 daily message count" in page.content
    # The admin's stylesheets are served too (WhiteNoise), not just referenced.
    stylesheet = Client().get("/static/admin/css/base.css")
    assert stylesheet.status_code == 200
    assert b"{" in stylesheet.getvalue()


def test_admin_logins_are_limited_per_account_and_address(
    stats_db: str, stats_settings: dict[str, Any]
) -> None:
    """Password guessing at the admin: 429 with Retry-After once the account's budget is spent;
    a forged X-Forwarded-For from a peer that is no trusted proxy buys no fresh budget."""
    User.objects.create_superuser("root", password="a-long-password-3")
    guesses = [
        Client(REMOTE_ADDR="192.0.2.10").post(
            "/admin/login/",
            {"username": "root", "password": f"guess-{i}"},
            headers={"X-Forwarded-For": f"198.51.100.{i}"},
        )
        for i in range(6)
    ]
    assert [g.status_code for g in guesses] == [200] * 5 + [429]  # 200: the form, with an error
    assert int(guesses[-1]["Retry-After"]) >= 1
    # Even the right password waits: the budget protects the account, not the guesser.
    right = Client().post("/admin/login/", {"username": "root", "password": "a-long-password-3"})
    assert right.status_code == 429
    # Another account is not locked by root's budget.
    User.objects.create_superuser("ops", password="a-long-password-4")
    ops = Client().post("/admin/login/", {"username": "ops", "password": "a-long-password-4"})
    assert ops.status_code == 302


def test_a_forged_forwarded_for_buys_no_fresh_admin_login_budget(
    stats_db: str, stats_settings: dict[str, Any]
) -> None:
    """Per address: the peer is no trusted proxy, so its X-Forwarded-For is ignored."""
    with override_settings(ADMIN_LOGIN_LIMIT_PER_IP=3):
        codes = [
            Client(REMOTE_ADDR="192.0.2.77")
            .post(
                "/admin/login/",
                {"username": f"user{i}-{uuid.uuid4().hex[:6]}", "password": "guess"},
                headers={"X-Forwarded-For": f"198.51.100.{i}"},
            )
            .status_code
            for i in range(4)
        ]
    assert codes == [200, 200, 200, 429]
