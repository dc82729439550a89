"""The postgres chart's shell scripts, run for real against the test session's PostgreSQL:
database provisioning (idempotent, passwords from files) and pg_dump backups with retention,
restored the way charts/postgres/README.md documents."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from chartkit import CHARTS

SCRIPTS = CHARTS / "postgres" / "files"


def client_env(admin_url: str, **extra: str) -> dict[str, str]:
    """libpq settings for the scripts, as the chart gives them (PGHOST, PGUSER, ...)."""
    url = urlsplit(admin_url)
    env = {
        "PATH": os.environ["PATH"],
        "PGHOST": url.hostname or "127.0.0.1",
        "PGPORT": str(url.port or 5432),
        "PGUSER": url.username or "postgres",
        "PGDATABASE": url.path.lstrip("/") or "postgres",
        "PGCONNECT_TIMEOUT": "10",
    }
    if url.password:
        env["PGPASSWORD"] = url.password
    env.update(extra)
    return env


def run_script(name: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/sh", str(SCRIPTS / name)], env=env, capture_output=True, text=True, timeout=120
    )


def role_url(admin_url: str, role: str, database: str) -> str:
    url = urlsplit(admin_url)
    return f"postgresql://{role}@{url.hostname}:{url.port}/{database}"


@pytest.fixture
def services(postgres_admin_url: str, tmp_path: Path) -> Iterator[tuple[list[str], Path]]:
    """Two service names of this test's own, their password files, and cleanup afterwards."""
    suffix = uuid.uuid4().hex[:8]
    names = [f"svc-{suffix}-a", f"svc-{suffix}-b"]
    passwords = tmp_path / "passwords"
    passwords.mkdir()
    for name in names:
        (passwords / name).write_text(uuid.uuid4().hex)
    yield names, passwords
    with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
        for name in names:
            role = name.replace("-", "_")
            conn.execute(f'DROP DATABASE IF EXISTS "{role}" WITH (FORCE)')
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def test_ensure_databases_creates_one_owned_database_per_service_idempotently(
    postgres_admin_url: str, services: tuple[list[str], Path]
) -> None:
    names, passwords = services
    env = client_env(postgres_admin_url, SERVICES=" ".join(names), PASSWORDS_DIR=str(passwords))
    for _ in range(2):  # the second run (every sync) must change nothing and not fail
        result = run_script("ensure-databases.sh", env)
        assert result.returncode == 0, result.stderr
    assert "ready" in result.stdout
    assert not any(p.read_text() in result.stdout + result.stderr for p in passwords.iterdir())

    first, second = (name.replace("-", "_") for name in names)
    with psycopg.connect(role_url(postgres_admin_url, first, first), autocommit=True) as conn:
        conn.execute("CREATE TABLE owned_by_service (id int)")
        owner = conn.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()"
        ).fetchone()
        assert owner == (first,)
    # CONNECT is revoked from PUBLIC: one service cannot open another's database.
    with pytest.raises(psycopg.OperationalError, match="permission denied"):
        psycopg.connect(role_url(postgres_admin_url, second, first)).close()


def test_ensure_databases_refuses_a_missing_password(
    postgres_admin_url: str, services: tuple[list[str], Path]
) -> None:
    names, passwords = services
    (passwords / names[1]).unlink()
    env = client_env(postgres_admin_url, SERVICES=" ".join(names), PASSWORDS_DIR=str(passwords))
    result = run_script("ensure-databases.sh", env)
    assert result.returncode == 1
    assert f"no password for {names[1]}" in result.stderr


def test_backup_dumps_every_database_prunes_old_dumps_and_restores(
    postgres_admin_url: str, make_database: Callable[[], str], tmp_path: Path
) -> None:
    source_url = make_database()
    with psycopg.connect(source_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE messages (id int PRIMARY KEY, body text)")
        conn.execute("INSERT INTO messages VALUES (1, 'hello'), (2, 'world')")
    database = urlsplit(source_url).path.lstrip("/")
    backups = tmp_path / "backups"
    backups.mkdir()
    expired = backups / f"{database}-20000101T000000Z.dump"
    recent = backups / f"{database}-recent.dump"
    for old in (expired, recent):
        old.write_bytes(b"old")
    ten_days_ago = time.time() - 10 * 86400
    os.utime(expired, (ten_days_ago, ten_days_ago))

    env = client_env(
        postgres_admin_url, DATABASES=database, RETENTION_DAYS="7", BACKUP_DIR=str(backups)
    )
    result = run_script("backup.sh", env)
    assert result.returncode == 0, result.stderr

    assert not expired.exists()
    assert recent.exists()
    (dump,) = list(backups.glob(f"{database}-2*.dump"))
    assert not list(backups.glob("*.partial"))

    # The restore documented in charts/postgres/README.md, into an empty database.
    target_url = make_database()
    target = urlsplit(target_url).path.lstrip("/")
    restore = subprocess.run(
        ["pg_restore", "--no-owner", "--exit-on-error", f"--dbname={target}", str(dump)],
        env=client_env(postgres_admin_url),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert restore.returncode == 0, restore.stderr
    with psycopg.connect(target_url) as conn:
        rows = conn.execute("SELECT id, body FROM messages ORDER BY id").fetchall()
    assert rows == [(1, "hello"), (2, "world")]
