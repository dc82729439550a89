"""JSON logging, request ids, Prometheus rendering and the shared settings."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from pydantic import ValidationError
from servicekit.logging import configure_logging, request_id_from_header, request_id_var
from servicekit.metrics import HttpMetrics, record_request
from servicekit.settings import ServiceSettings, sqlalchemy_url


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    configure_logging("demo", "DEBUG", stream=stream)
    yield stream
    root.handlers[:], root.level = saved


def test_each_log_record_is_one_json_object_with_the_request_id(log_stream: io.StringIO) -> None:
    token = request_id_var.set("req-42")
    try:
        logging.getLogger("demo.module").info("hello %s", "world", extra={"user_id": "u1"})
    finally:
        request_id_var.reset(token)
    logging.getLogger("demo.module").warning("outside a request")
    first, second = (json.loads(line) for line in log_stream.getvalue().splitlines())
    assert first["message"] == "hello world"
    assert first["request_id"] == "req-42"
    assert first["user_id"] == "u1"
    assert first["service"] == "demo"
    assert first["level"] == "INFO"
    assert "request_id" not in second


def test_exceptions_are_logged_inside_the_json_line(log_stream: io.StringIO) -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("demo").exception("failed")
    (entry,) = (json.loads(line) for line in log_stream.getvalue().splitlines())
    assert "ValueError: boom" in entry["exception"]


def test_request_ids_from_headers_are_sanitised() -> None:
    assert request_id_from_header("abc-123") == "abc-123"
    generated = request_id_from_header("bad id\nwith newline")
    assert generated != "bad id\nwith newline"
    assert len(generated) == 32
    assert len(request_id_from_header(None)) == 32
    assert request_id_from_header("x" * 200) != "x" * 200


def test_metrics_render_in_prometheus_text_format() -> None:
    metrics = HttpMetrics()
    metrics.observe("GET", "/items/{id}", 200, 0.05)
    metrics.observe("GET", "/items/{id}", 200, 0.07)
    body, content_type = metrics.render()
    text = body.decode()
    assert content_type.startswith("text/plain")
    assert 'http_requests_total{method="GET",route="/items/{id}",status="200"} 2.0' in text
    assert "http_request_duration_seconds_bucket" in text


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:secret@db:5432/app")
    monkeypatch.setenv("JWT_AUDIENCE", "other")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    settings = ServiceSettings()
    assert settings.jwt_audience == "other"
    assert settings.jwt_issuer == "chat-auth"
    assert settings.log_level == "DEBUG"
    assert "secret" not in repr(settings)


def test_bad_log_level_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_LEVEL", "LOUD")
    with pytest.raises(ValidationError, match="log_level"):
        ServiceSettings()


def test_sqlalchemy_url_switches_the_driver() -> None:
    assert sqlalchemy_url("postgresql://u@h:1/d") == "postgresql+psycopg://u@h:1/d"
    assert sqlalchemy_url("postgres://u@h/d") == "postgresql+psycopg://u@h/d"
    with pytest.raises(ValueError, match="postgresql"):
        sqlalchemy_url("mysql://u@h/d")


def test_a_finished_request_is_counted_and_logged_once_unless_a_probe(
    log_stream: io.StringIO,
) -> None:
    metrics = HttpMetrics()
    record_request(
        metrics, method="GET", path="/items/7", route="/items/{id}", status=200, seconds=0.0123
    )
    record_request(metrics, method="GET", path="/health", route="/health", status=200, seconds=0)
    (line,) = (json.loads(text) for text in log_stream.getvalue().splitlines())
    assert (line["logger"], line["message"]) == ("servicekit.access", "GET /items/7 200")
    assert (line["route"], line["status"], line["duration_ms"]) == ("/items/{id}", 200, 12.3)
    body, _ = metrics.render()
    assert b'route="/items/{id}",status="200"' in body
    assert b'route="/health",status="200"' in body  # probes are still measured
