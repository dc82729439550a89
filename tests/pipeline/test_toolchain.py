"""Decisions behind the engine's containers: the Debian package list both installers read,
the key that gives each test run its own backing services, what a test's exit code means."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest
import redis
from ci.core.toolchain import (
    SYSTEM_PACKAGES_FILE,
    TEST_POSTGRES_SETTINGS,
    TEST_REDIS_SETTINGS,
    backing_service_key,
    describe_exit,
    killed_by,
    parse_system_packages,
    postgres_server_args,
    redis_server_args,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / ".ci" / "system-packages.sh"


def script_output(tmp_path: Path, listing: str, *args: str) -> list[str]:
    """Run a copy of .ci/system-packages.sh beside `listing` as its package list."""
    shutil.copy(SCRIPT, tmp_path / "system-packages.sh")
    (tmp_path / "system-packages.txt").write_text(listing)
    done = subprocess.run(
        ["bash", str(tmp_path / "system-packages.sh"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.split()


def test_the_host_script_and_the_engine_read_the_same_package_list(tmp_path: Path) -> None:
    text = (REPO_ROOT / SYSTEM_PACKAGES_FILE).read_text()

    names = [p.name for p in parse_system_packages(text)]

    assert {"postgresql", "redis-server", "chromium", "docker-registry", "git"} <= set(names)
    assert script_output(tmp_path, text, "--list") == names


def test_the_script_finds_missing_binaries_by_name_and_by_path(tmp_path: Path) -> None:
    listing = (
        "# comment\n"
        "bash bash\n"
        "absent-package no-such-binary-xyz\n"
        "absent-server /no/such/dir/*/bin/server\n"
        f"present-file {SCRIPT.parent}/*.sh\n"
    )

    assert script_output(tmp_path, listing, "--missing") == ["absent-package", "absent-server"]
    assert [p.name for p in parse_system_packages(listing)] == [
        "bash",
        "absent-package",
        "absent-server",
        "present-file",
    ]


def test_a_bad_package_line_is_named_with_file_and_line() -> None:
    with pytest.raises(ValueError, match=r"list.txt:2: expected '<debian package> <binary>'"):
        parse_system_packages("git git\nNot_A_Package\n", "list.txt")
    with pytest.raises(ValueError, match="lists no package"):
        parse_system_packages("# nothing\n", "list.txt")


def test_backing_services_differ_per_service_and_per_test_container() -> None:
    auth = backing_service_key("auth", "postgres", "container-1")

    assert auth == backing_service_key("auth", "postgres", "container-1")  # deduplicated run
    assert auth != backing_service_key("backend", "postgres", "container-1")
    assert auth != backing_service_key("auth", "postgres", "container-2")
    assert auth != backing_service_key("auth", "redis", "container-1")
    assert auth.startswith("auth-postgres-")


@pytest.mark.parametrize(
    ("code", "signal", "text"),
    [
        (0, None, "exited 0"),
        (1, None, "exited 1"),
        (127, None, "exited 127"),
        (137, "SIGKILL", "killed by SIGKILL (exit 137)"),
        (143, "SIGTERM", "killed by SIGTERM (exit 143)"),
        (130, "SIGINT", "killed by SIGINT (exit 130)"),
        (255, None, "exited 255"),
    ],
)
def test_exit_codes_of_signals_are_named(code: int, signal: str | None, text: str) -> None:
    assert killed_by(code) == signal
    assert describe_exit(code) == text


def test_the_test_database_runs_with_the_settings_the_engine_gives_its_own(
    postgres_admin_url: str,
) -> None:
    """The session's PostgreSQL (the harness's own here, the engine's service where
    TEST_DATABASE_URL points to it) runs with TEST_POSTGRES_SETTINGS."""
    with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
        actual = {
            key: str(conn.execute(f"SHOW {key}").fetchone()[0])  # type: ignore[index]
            for key in TEST_POSTGRES_SETTINGS
        }

    assert actual == TEST_POSTGRES_SETTINGS
    args = postgres_server_args()
    assert args[0] == "postgres"
    assert args[1:3] == ["-c", "max_connections=300"]


def test_the_test_redis_runs_with_the_settings_the_engine_gives_its_own(
    redis_base_url: str,
) -> None:
    client = redis.Redis.from_url(redis_base_url, decode_responses=True)
    try:
        actual = {key: client.config_get(key)[key] for key in TEST_REDIS_SETTINGS}
    finally:
        client.close()

    assert actual == TEST_REDIS_SETTINGS
    assert redis_server_args()[:3] == ["redis-server", "--databases", "4096"]
