"""Rebinding a service's `run` command to a loopback port."""
# ruff: noqa: S104  (0.0.0.0 is the container command being rewritten, not a bind)

from __future__ import annotations

import pytest
from ci.localapp.argv import CommandError, server_of, with_listen_address


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["uvicorn", "auth.main:app", "--host", "0.0.0.0", "--port", "8000"],
         ["uvicorn", "auth.main:app", "--host", "127.0.0.1", "--port", "9001"]),
        (["uvicorn", "--host=0.0.0.0", "--port=8000", "--proxy-headers", "ai.main:app"],
         ["uvicorn", "--proxy-headers", "ai.main:app", "--host", "127.0.0.1", "--port", "9001"]),
        (["uvicorn", "backend.main:app"],
         ["uvicorn", "backend.main:app", "--host", "127.0.0.1", "--port", "9001"]),
        (["python", "-m", "uvicorn", "a:app", "--port", "8000"],
         ["python", "-m", "uvicorn", "a:app", "--host", "127.0.0.1", "--port", "9001"]),
    ],
)  # fmt: skip
def test_uvicorn_host_and_port_are_replaced(argv: list[str], expected: list[str]) -> None:
    assert with_listen_address(argv, "127.0.0.1", 9001) == expected


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["gunicorn", "--bind", "0.0.0.0:8000", "-w", "2", "media_storage.app:app"],
         ["gunicorn", "-w", "2", "media_storage.app:app", "--bind", "127.0.0.1:9001"]),
        (["gunicorn", "-b", "0.0.0.0:8000", "-b", "[::]:8000", "x:app"],
         ["gunicorn", "x:app", "--bind", "127.0.0.1:9001"]),
        (["gunicorn", "--bind=0.0.0.0:8000", "-b0.0.0.0:8001", "--backlog", "64", "x:app"],
         ["gunicorn", "--backlog", "64", "x:app", "--bind", "127.0.0.1:9001"]),
        (["/opt/venv/bin/gunicorn", "-c", "conf.py", "x.wsgi"],
         ["/opt/venv/bin/gunicorn", "-c", "conf.py", "x.wsgi", "--bind", "127.0.0.1:9001"]),
        (["python3", "-m", "gunicorn", "x:app"],
         ["python3", "-m", "gunicorn", "x:app", "--bind", "127.0.0.1:9001"]),
    ],
)  # fmt: skip
def test_gunicorn_binds_are_replaced(argv: list[str], expected: list[str]) -> None:
    assert with_listen_address(argv, "127.0.0.1", 9001) == expected


def test_the_original_command_is_left_unchanged() -> None:
    argv = ["uvicorn", "a:app", "--port", "8000"]
    with_listen_address(argv, "127.0.0.1", 9001)
    assert argv == ["uvicorn", "a:app", "--port", "8000"]


@pytest.mark.parametrize(
    "argv", [[], ["python", "-m", "data_processor.manage", "runserver"], ["hypercorn", "a:app"]]
)
def test_unknown_servers_are_refused_by_name(argv: list[str]) -> None:
    with pytest.raises(CommandError, match=r"only uvicorn and gunicorn|empty command"):
        server_of(argv)


def test_a_listen_flag_without_value_is_refused() -> None:
    with pytest.raises(CommandError, match="no value"):
        with_listen_address(["uvicorn", "a:app", "--port"], "127.0.0.1", 9001)
