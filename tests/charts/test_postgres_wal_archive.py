"""What the Barman Cloud plugin does for a CloudNativePG Cluster, with the same barman-cloud tools
on real servers: a real PostgreSQL archives every WAL segment with barman-cloud-wal-archive to a
real S3 server (SeaweedFS `weed`), barman-cloud-backup takes a base backup there, and a
point-in-time restore (barman-cloud-restore, then barman-cloud-wal-restore as restore_command)
to a time between two inserts brings back exactly the rows written before it."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from harness.s3 import ADMIN_KEYS, S3Server, weed_s3_server
from harness.servers import START_TIMEOUT, PostgresServer

SERVER_NAME = "postgres"


@pytest.fixture
def shared() -> Iterator[Path]:
    """Under /tmp (a folder the server's user may enter, unlike pytest's tmp_path)."""
    directory = Path(tempfile.mkdtemp(prefix="pitr-"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def s3(tmp_path: Path) -> Iterator[S3Server]:
    with weed_s3_server(tmp_path) as server:
        yield server


def credentials_file(directory: Path) -> Path:
    """The store's keys in a file the server's user reads: never in a command line."""
    path = directory / "aws-credentials"
    access, secret = ADMIN_KEYS
    path.write_text(f"[default]\naws_access_key_id = {access}\naws_secret_access_key = {secret}\n")
    path.chmod(0o644)
    return path


def barman(tool: str, s3: S3Server, credentials: Path, *args: str) -> str:
    """A barman-cloud command as the shell line PostgreSQL (or the test) runs."""
    return (
        f"AWS_SHARED_CREDENTIALS_FILE={credentials} AWS_DEFAULT_REGION=us-east-1 "
        f"barman-cloud-{tool} --cloud-provider aws-s3 --endpoint-url {s3.endpoint} {' '.join(args)}"
    )


def configure(server: PostgresServer, lines: list[str]) -> None:
    with (server.datadir / "postgresql.conf").open("a") as conf:
        conf.write("\n".join(lines) + "\n")


def run_as_postgres(command: str) -> str:
    result = subprocess.run(
        ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "sh", "-c", command],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"{command}\n{result.stdout}{result.stderr}"
    return result.stdout


def rows(url: str) -> list[tuple[int, str]]:
    with psycopg.connect(url) as connection:
        return [(n, t) for n, t in connection.execute("SELECT n, t FROM events ORDER BY n")]


def test_wal_archived_to_s3_restores_to_a_point_in_time_row_by_row(
    s3: S3Server, shared: Path
) -> None:
    bucket = s3.make_bucket()
    credentials = credentials_file(shared)
    destination = f"s3://{bucket}/production"
    archive = barman("wal-archive", s3, credentials, destination, SERVER_NAME, "%p")
    (shared / "primary").mkdir()
    primary = PostgresServer(workdir=shared / "primary").init()
    configure(
        primary, ["wal_level = replica", "archive_mode = on", f"archive_command = '{archive}'"]
    )
    primary.start()
    try:
        with psycopg.connect(primary.url(), autocommit=True) as db:
            db.execute("CREATE TABLE events (n int PRIMARY KEY, t text NOT NULL)")
            db.execute("INSERT INTO events SELECT n, 'before ' || n FROM generate_series(1, 50) n")
            run_as_postgres(
                barman(
                    "backup",
                    s3,
                    credentials,
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(primary.port),
                    "-U",
                    "postgres",
                    destination,
                    SERVER_NAME,
                )
            )
            db.execute("INSERT INTO events VALUES (51, 'after the backup, before the target')")
            expected = rows(primary.url())
            time.sleep(1.1)  # recovery_target_time has a resolution of the clock; keep them apart
            (target,) = db.execute("SELECT now()::text").fetchone() or ()
            time.sleep(1.1)
            db.execute("INSERT INTO events VALUES (52, 'after the target')")
            db.execute("UPDATE events SET t = 'changed after the target' WHERE n = 1")
            # Close the segment holding the last insert, so it is archived.
            db.execute("SELECT pg_switch_wal()")
            (last,) = db.execute("SELECT pg_walfile_name(pg_current_wal_lsn())").fetchone() or ()
            deadline = time.monotonic() + START_TIMEOUT * 4
            while True:
                (archived,) = db.execute(
                    "SELECT last_archived_wal FROM pg_stat_archiver"
                ).fetchone() or (None,)
                if archived is not None and archived >= last[:24]:
                    break
                assert time.monotonic() < deadline, f"WAL {last} not archived (at {archived})"
                time.sleep(0.2)
    finally:
        primary.stop()

    restored = PostgresServer(workdir=shared / "restored")
    restored.workdir.mkdir(mode=0o755)
    restored.datadir.mkdir(mode=0o700)
    shutil.chown(restored.datadir, "postgres", "postgres")
    listed = run_as_postgres(
        barman("backup-list", s3, credentials, "--format", "json", destination, SERVER_NAME)
    )
    (backup,) = json.loads(listed)["backups_list"]
    run_as_postgres(
        barman(
            "restore",
            s3,
            credentials,
            destination,
            SERVER_NAME,
            backup["backup_id"],
            str(restored.datadir),
        )
    )
    fetch = barman("wal-restore", s3, credentials, destination, SERVER_NAME, "%f", "%p")
    configure(
        restored,
        [
            f"restore_command = '{fetch}'",
            f"recovery_target_time = '{target}'",
            "recovery_target_action = promote",
            "archive_mode = off",
        ],
    )
    (restored.datadir / "recovery.signal").touch()
    shutil.chown(restored.datadir / "recovery.signal", "postgres", "postgres")
    restored.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT * 4
        with psycopg.connect(restored.url(), autocommit=True) as db:
            while db.execute("SELECT pg_is_in_recovery()").fetchone() != (False,):
                assert time.monotonic() < deadline, "recovery did not reach its target"
                time.sleep(0.2)
        assert rows(restored.url()) == expected
    finally:
        restored.destroy()
