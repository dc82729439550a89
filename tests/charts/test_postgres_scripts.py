"""The postgres chart's shell scripts, run for real against the test session's PostgreSQL:
database provisioning (idempotent, passwords from files) and pg_dump backups with retention,
restored the way charts/postgres/README.md documents."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from chartkit import CHARTS, pod_specs, render_environment

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


@pytest.fixture
def monitoring_role(postgres_admin_url: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A monitoring role name of this test's own, its password file, and cleanup afterwards."""
    role = f"exporter_{uuid.uuid4().hex[:8]}"
    password = tmp_path / "exporter-password"
    password.write_text(uuid.uuid4().hex)
    yield role, password
    with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def test_ensure_databases_gives_the_exporter_a_pg_monitor_role_and_nothing_more(
    postgres_admin_url: str, services: tuple[list[str], Path], monitoring_role: tuple[str, Path]
) -> None:
    names, passwords = services
    role, password = monitoring_role
    env = client_env(
        postgres_admin_url,
        SERVICES=" ".join(names),
        PASSWORDS_DIR=str(passwords),
        MONITORING_ROLE=role,
        MONITORING_PASSWORD_FILE=str(password),
    )
    for _ in range(2):  # idempotent: every sync runs it
        result = run_script("ensure-databases.sh", env)
        assert result.returncode == 0, result.stderr
    assert f"monitoring role {role} ready" in result.stdout
    assert password.read_text() not in result.stdout + result.stderr

    with psycopg.connect(role_url(postgres_admin_url, role, "postgres"), autocommit=True) as conn:
        granted = conn.execute(
            "SELECT rolsuper, rolcreatedb, rolcreaterole, pg_has_role('pg_monitor', 'member'),"
            " pg_has_role('pg_read_all_stats', 'member') FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        assert granted == (False, False, False, True, True)
        # What postgres_exporter queries: every database's statistics.
        databases = {row[0] for row in conn.execute("SELECT datname FROM pg_stat_database")}
        assert {n.replace("-", "_") for n in names} <= databases
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE DATABASE exporter_may_not")
    # No service's data: CONNECT to their databases is not granted to it.
    service_database = names[0].replace("-", "_")
    with pytest.raises(psycopg.OperationalError, match="permission denied"):
        psycopg.connect(role_url(postgres_admin_url, role, service_database)).close()


def test_ensure_databases_refuses_a_monitoring_role_without_password(
    postgres_admin_url: str, services: tuple[list[str], Path], monitoring_role: tuple[str, Path]
) -> None:
    names, passwords = services
    role, password = monitoring_role
    password.write_text("")
    env = client_env(
        postgres_admin_url,
        SERVICES=" ".join(names),
        PASSWORDS_DIR=str(passwords),
        MONITORING_ROLE=role,
        MONITORING_PASSWORD_FILE=str(password),
    )
    result = run_script("ensure-databases.sh", env)
    assert result.returncode == 1
    assert f"no password for {role}" in result.stderr


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


# Rows of each service's own tables (after its real migrations), as the services write them.
SEED = {
    "auth": [
        "INSERT INTO users (id, username, password_hash, created_at) VALUES"
        " ('00000000-0000-4000-8000-000000000001', 'alice', 'argon2-hash', now()),"
        " ('00000000-0000-4000-8000-000000000002', 'bob', 'argon2-hash', now())",
        "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, created_at, expires_at)"
        " VALUES ('00000000-0000-4000-8000-000000000003', '00000000-0000-4000-8000-000000000001',"
        " '00000000-0000-4000-8000-000000000004', repeat('a', 64), now(),"
        " now() + interval '1 day')",
    ],
    "backend": [
        "INSERT INTO conversations (id, user_id, title, created_at) VALUES"
        " ('00000000-0000-4000-8000-000000000011', 'alice', 'hello', now())",
        "INSERT INTO messages (id, conversation_id, user_id, role, content, status, attempts,"
        " created_at, updated_at) VALUES ('00000000-0000-4000-8000-000000000012',"
        " '00000000-0000-4000-8000-000000000011', 'alice', 'user', 'hi', 'completed', 0, now(),"
        " now())",
        "INSERT INTO outbox (event_id, type, conversation_id, message_id, user_id, role,"
        " created_at) VALUES ('00000000-0000-4000-8000-000000000013', 'message.created',"
        " '00000000-0000-4000-8000-000000000011', '00000000-0000-4000-8000-000000000012',"
        " 'alice', 'user', now())",
    ],
    "data-processor": [
        "INSERT INTO data_processor_processedevent (event_id, event_type, stream_id, processed_at)"
        " VALUES ('e1', 'message.created', '1-0', now())",
        "INSERT INTO data_processor_dailymessagecount (user_id, day, count) VALUES"
        " ('00000000-0000-4000-8000-000000000001', '2026-12-06', 3)",
    ],
}
MIGRATE = {
    "auth": [sys.executable, "-m", "auth.migrate"],
    "backend": [sys.executable, "-m", "backend.migrate"],
    "data-processor": [sys.executable, "-m", "data_processor.manage", "migrate", "--noinput"],
}


def snapshot(url: str) -> dict[str, list[tuple[object, ...]]]:
    """Every table of the database with all its rows (sorted), and who owns it."""
    with psycopg.connect(url) as conn:
        tables = [
            (name, owner)
            for name, owner in conn.execute(
                "SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public'"
            )
        ]
        return {
            f"{name} (owner {owner})": sorted(
                conn.execute(f'SELECT * FROM "{name}"').fetchall(),  # noqa: S608 (pg_tables)
                key=repr,
            )
            for name, owner in tables
        }


def damage(url: str) -> None:
    """What a bad migration or a mistaken command leaves: rows gone, a table gone, junk added."""
    with psycopg.connect(url, autocommit=True) as conn:
        tables = [
            row[0]
            for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ]
        for table in tables:
            conn.execute(f'TRUNCATE "{table}" CASCADE')
        conn.execute(f'DROP TABLE "{sorted(tables)[0]}" CASCADE')
        conn.execute("CREATE TABLE junk (id int)")


def test_restore_drill_brings_back_every_table_of_every_service_database(
    postgres_admin_url: str, tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:8]
    services = {service: f"drill-{suffix}-{service}" for service in SEED}
    passwords = tmp_path / "passwords"
    passwords.mkdir()
    for name in services.values():
        (passwords / name).write_text(uuid.uuid4().hex)
    env = client_env(
        postgres_admin_url, SERVICES=" ".join(services.values()), PASSWORDS_DIR=str(passwords)
    )
    assert run_script("ensure-databases.sh", env).returncode == 0
    databases = {s: n.replace("-", "_") for s, n in services.items()}
    urls = {s: role_url(postgres_admin_url, db, db) for s, db in databases.items()}
    try:
        for service, url in urls.items():
            migrate_env = {
                **os.environ,
                "DATABASE_URL": url,
                "DJANGO_SECRET_KEY": f"drill-{suffix}",
                # data-processor's settings insist on one; migrations never connect to it.
                "REDIS_URL": "redis://127.0.0.1:9/0",
            }
            subprocess.run(MIGRATE[service], env=migrate_env, check=True, timeout=300)
            with psycopg.connect(url, autocommit=True) as conn:
                for statement in SEED[service]:
                    conn.execute(statement)
        before = {s: snapshot(url) for s, url in urls.items()}
        assert all(len(tables) >= 3 for tables in before.values())

        backups = tmp_path / "backups"
        backups.mkdir()
        backup_env = client_env(
            postgres_admin_url, DATABASES=" ".join(databases.values()), RETENTION_DAYS="7",
            BACKUP_DIR=str(backups),
        )  # fmt: skip
        assert run_script("backup.sh", backup_env).returncode == 0
        stamp = next(backups.glob("*.dump")).name.rsplit("-", 1)[1].removesuffix(".dump")

        restore_env = client_env(postgres_admin_url, BACKUP_DIR=str(backups))
        # One database: only it comes back; the others stay as they are.
        for url in urls.values():
            damage(url)
        one = run_restore(restore_env, stamp, databases["backend"])
        assert one.returncode == 0, one.stderr
        assert snapshot(urls["backend"]) == before["backend"]
        assert snapshot(urls["auth"]) != before["auth"]
        # All of them, from the run's stamp, while a client still holds a session on one:
        # every table, every row, the same owners; the junk made after the backup is gone.
        session = psycopg.connect(urls["auth"], autocommit=True)
        everything = run_restore(restore_env, stamp)
        with pytest.raises(psycopg.OperationalError):  # ended: it held the replaced database
            session.execute("SELECT 1")
        session.close()
        assert everything.returncode == 0, everything.stderr
        assert {s: snapshot(url) for s, url in urls.items()} == before
    finally:
        with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
            for db in databases.values():
                conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
                conn.execute(f'DROP ROLE IF EXISTS "{db}"')


def run_restore(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/sh", str(SCRIPTS / "restore.sh"), *args],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_restore_refuses_bad_arguments_before_changing_anything(
    postgres_admin_url: str, tmp_path: Path
) -> None:
    env = client_env(postgres_admin_url, BACKUP_DIR=str(tmp_path))
    assert run_restore(env).returncode == 2
    assert run_restore(env, "../etc/passwd").returncode == 2
    missing = run_restore(env, "20000101T000000Z")
    assert missing.returncode == 1
    assert "no dump with stamp '20000101T000000Z'" in missing.stderr
    (tmp_path / "backend-20000101T000000Z.dump").write_bytes(b"not a dump")
    broken = run_restore(env, "20000101T000000Z")
    assert broken.returncode == 1
    assert "not a readable pg_dump archive" in broken.stderr


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_the_exporter_logs_in_as_the_role_ensure_databases_makes_not_the_superuser(
    environment: str,
) -> None:
    objects = render_environment("postgres", environment).objects
    server = next(o for o in objects if o["kind"] == "StatefulSet")
    job = next(o for o in objects if o["kind"] == "Job")
    pods = {"server": pod_specs(server)[0], "job": pod_specs(job)[0]}
    exporter = next(c for c in pods["server"]["containers"] if c["name"] != "postgres")
    env = {e["name"]: e for e in exporter["env"]}
    login = env["DATA_SOURCE_USER"]["value"]
    secret = env["DATA_SOURCE_PASS"]["valueFrom"]["secretKeyRef"]
    assert login != "postgres"
    assert secret["name"] != "postgres-superuser"
    # Both paths that run ensure-databases.sh (first start, every sync) make that role with the
    # password of that Secret key.
    for where, pod in pods.items():
        script = next(c for c in pod["containers"] if c["name"] in {"postgres", "ensure-databases"})
        script_env = {e["name"]: e.get("value") for e in script["env"]}
        assert script_env["MONITORING_ROLE"] == login, where
        mount = next(
            m
            for m in script["volumeMounts"]
            if script_env["MONITORING_PASSWORD_FILE"].startswith(m["mountPath"] + "/")
        )
        volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
        assert volume["secret"]["secretName"] == secret["name"], where
        assert volume["secret"]["items"] == [{"key": secret["key"], "path": "password"}], where
