"""The shared gunicorn settings (the services' gunicorn tests run them for real)."""

from __future__ import annotations

import io
import json
import logging
import logging.config

import pytest
from servicekit.gunicorn import gunicorn_settings


def test_defaults_and_environment_overrides() -> None:
    defaults = gunicorn_settings("svc", environ={})
    assert (defaults["bind"], defaults["workers"]) == ("0.0.0.0:8000", 1)
    assert (defaults["worker_class"], defaults["worker_connections"]) == ("gevent", 1000)
    assert defaults["worker_tmp_dir"] == "/dev/shm"
    tuned = gunicorn_settings(
        "svc",
        timeout=60,
        environ={
            "BIND": "127.0.0.1:9000",
            "WEB_CONCURRENCY": "3",
            "GUNICORN_WORKER_CONNECTIONS": "50",
            "GUNICORN_WORKER_TMP_DIR": "/tmp/x",
        },
    )
    assert (tuned["bind"], tuned["workers"], tuned["worker_connections"]) == (
        "127.0.0.1:9000",
        3,
        50,
    )
    assert (tuned["timeout"], tuned["worker_tmp_dir"]) == (60, "/tmp/x")


def test_every_name_is_a_gunicorn_setting() -> None:
    config = pytest.importorskip("gunicorn.config")
    known = {setting.name for setting in config.KNOWN_SETTINGS}
    assert set(gunicorn_settings("svc", environ={})) <= known


def test_gunicorn_lines_are_json_with_the_service_name(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stdout", stream)  # the handler names ext://sys.stdout
    logger = logging.getLogger("gunicorn.error")
    root = logging.getLogger()
    root_state = (root.level, list(root.handlers))
    try:
        logging.config.dictConfig(gunicorn_settings("media-storage", environ={})["logconfig_dict"])
        logger.info("Booting worker with pid: %s", 42)
    finally:
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True
        root.setLevel(root_state[0])
        root.handlers[:] = root_state[1]
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert (line["service"], line["message"]) == ("media-storage", "Booting worker with pid: 42")
