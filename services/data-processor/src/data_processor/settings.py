"""Django settings, all from the environment (see `data_processor.config.ProcessorSettings`)."""

from __future__ import annotations

import dj_database_url

from data_processor.config import ProcessorSettings, split_list

CONFIG = ProcessorSettings()

SECRET_KEY = CONFIG.django_secret_key.get_secret_value()
DEBUG = CONFIG.django_debug
ALLOWED_HOSTS = split_list(CONFIG.django_allowed_hosts)
CSRF_TRUSTED_ORIGINS = split_list(CONFIG.django_csrf_trusted_origins)
FORCE_SCRIPT_NAME = CONFIG.django_force_script_name or None

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "data_processor",
]

MIDDLEWARE = [
    "data_processor.middleware.RequestContextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # The admin's CSS/JS straight from the installed apps (no collectstatic step in the image).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "data_processor.urls"
WSGI_APPLICATION = "data_processor.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# conn_max_age=0: under gunicorn's gevent worker every request runs in a greenlet of its own,
# so a kept connection would belong to a greenlet that is gone; one connection per request.
DATABASES = {"default": dj_database_url.parse(CONFIG.database_url_or_fail(), conn_max_age=0)}
# Every network call has a timeout: connecting, and any single statement.
DATABASES["default"].setdefault("OPTIONS", {}).update(
    {"connect_timeout": 5, "options": "-c statement_timeout=30000"}
)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
# Absolute, with the route prefix: a relative "static/" is resolved against the script prefix of
# the moment it is first read (at start-up, before any request), so the admin's stylesheet links
# missed /api/stats behind the ingress. WhiteNoise strips FORCE_SCRIPT_NAME again when serving.
STATIC_URL = f"{(FORCE_SCRIPT_NAME or '').rstrip('/')}/static/"
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = False

# TLS ends at the ingress, which says so in X-Forwarded-Proto (admin CSRF origin checks need it).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
# Clients reach the admin over TLS only (the gateway), so its cookies never travel in clear.
SESSION_COOKIE_SECURE = CONFIG.django_secure_cookies
CSRF_COOKIE_SECURE = CONFIG.django_secure_cookies
SESSION_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"

# Shared service settings the views and the consumer read (tests may swap them per test).
REDIS = CONFIG.redis_target_or_fail()  # a servicekit.redisconn.RedisTarget
JWKS_URL = CONFIG.jwks_url
ADMIN_LOGIN_LIMIT_PER_ACCOUNT = CONFIG.stats_admin_login_limit_per_account
ADMIN_LOGIN_LIMIT_PER_IP = CONFIG.stats_admin_login_limit_per_ip
ADMIN_LOGIN_PERIOD_SECONDS = CONFIG.stats_admin_login_period_seconds
JWT_ISSUER = CONFIG.jwt_issuer
JWT_AUDIENCE = CONFIG.jwt_audience
STATS_STREAM = CONFIG.stats_stream
STATS_GROUP = CONFIG.stats_group
STATS_CLAIM_IDLE_MS = CONFIG.stats_claim_idle_ms
STATS_MAX_CONSUMER_LAG = CONFIG.stats_max_consumer_lag
STATS_ACTIVE_DAYS = CONFIG.stats_active_days

# JSON lines on stdout through servicekit's formatter (configured in wsgi.py / manage.py).
LOGGING_CONFIG = None
