"""Settings from the environment; Django's settings module and the consumer both read these."""

from __future__ import annotations

import os
import socket

from pydantic import Field, SecretStr
from servicekit.redisconn import RedisTarget
from servicekit.settings import ServiceSettings

EVENTS_STREAM = "chat:events"
CONSUMER_GROUP = "data-processor"


def default_consumer_name() -> str:
    """Pod name (HOSTNAME) + pid: unique per process, stable across nothing it should not be."""
    return f"{os.environ.get('HOSTNAME') or socket.gethostname()}-{os.getpid()}"


class ProcessorSettings(ServiceSettings):
    django_secret_key: SecretStr
    django_debug: bool = False
    # Comma-separated. "*" by default: the pod sits behind the ingress, and kubelet probes use
    # the pod IP as Host.
    django_allowed_hosts: str = "*"
    django_csrf_trusted_origins: str = ""
    # The ingress strips /api/stats; set this to it so admin links and redirects carry the prefix.
    django_force_script_name: str | None = None
    # Session and CSRF cookies only over HTTPS. Browsers take them on http://localhost too; turn
    # this off only to reach the admin over plain HTTP on another host name.
    django_secure_cookies: bool = True

    stats_stream: str = EVENTS_STREAM
    stats_group: str = CONSUMER_GROUP
    # Pending entries of another consumer idle this long are claimed (that consumer is dead).
    stats_claim_idle_ms: int = Field(default=30_000, gt=0)
    # /ready answers 503 when more entries than this wait undelivered in the stream.
    stats_max_consumer_lag: int = Field(default=1000, ge=0)
    # A conversation is "active" with a message within this many days.
    stats_active_days: int = Field(default=7, gt=0)

    # Admin login attempts per account and per client address, per period (then 429).
    stats_admin_login_limit_per_account: int = Field(default=5, ge=1)
    stats_admin_login_limit_per_ip: int = Field(default=20, ge=1)
    stats_admin_login_period_seconds: float = Field(default=60.0, gt=0)

    def database_url_or_fail(self) -> str:
        if not self.database_url:
            raise ValueError("DATABASE_URL must be set (postgresql://user:password@host:5432/db)")
        return self.database_url

    def redis_target_or_fail(self) -> RedisTarget:
        target = self.redis_target()
        if target is None:
            raise ValueError(
                "REDIS_URL (redis://host:6379/0) or REDIS_SENTINELS (host:26379,...) must be set"
            )
        return target


def split_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]
