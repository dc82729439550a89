"""The backup run's off-node copy: the real backup.sh, then the real offsite.sh with the real
rclone against a real S3 server (SeaweedFS's `weed`, on loopback, bound to the test's life), also
exactly as the chart renders it (the ConfigMap's script, the container's command and env)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from chartkit import Manifest, containers, load_values, pod_specs, render
from charts.test_postgres_scripts import client_env, run_script
from harness.s3 import weed_s3_server

BUCKET = "backups"
KEYS = {"writer": ("AKWRITER0001", "writer-secret-0001")}


@dataclass
class S3:
    endpoint: str

    def env(self, access_key: str, secret_key: str) -> dict[str, str]:
        """rclone's `offsite` remote as a Job would configure it (keys as env, from a Secret)."""
        return {
            "RCLONE_CONFIG_OFFSITE_TYPE": "s3",
            "RCLONE_CONFIG_OFFSITE_PROVIDER": "SeaweedFS",
            "RCLONE_CONFIG_OFFSITE_ENDPOINT": self.endpoint,
            "RCLONE_CONFIG_OFFSITE_REGION": "us-east-1",
            "RCLONE_CONFIG_OFFSITE_ENV_AUTH": "true",
            "AWS_ACCESS_KEY_ID": access_key,
            "AWS_SECRET_ACCESS_KEY": secret_key,
            "OFFSITE_BUCKET": BUCKET,
        }

    def rclone(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
        env = {"PATH": _path(), **self.env(*KEYS["writer"])}
        return subprocess.run(["rclone", *args], env=env, capture_output=True, timeout=timeout)


def _path() -> str:
    """The venv's bin first: its rclone and weed come from PyPI (dev group)."""
    return f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"


@pytest.fixture
def s3(tmp_path: Path) -> Iterator[S3]:
    """A real S3 server (harness.s3: weed on loopback) with the writer's keys and the bucket."""
    with weed_s3_server(tmp_path, KEYS) as server:
        server.make_bucket(BUCKET)
        yield S3(server.endpoint)


def backup_run(admin_url: str, database: str, backups: Path) -> list[Path]:
    env = client_env(admin_url, DATABASES=database, RETENTION_DAYS="7", BACKUP_DIR=str(backups))
    result = run_script("backup.sh", env)
    assert result.returncode == 0, result.stderr
    return [backups / name for name in (backups / "latest-run").read_text().split()]


def offsite(env: dict[str, str], backups: Path) -> subprocess.CompletedProcess[str]:
    return run_script("offsite.sh", {"PATH": _path(), "BACKUP_DIR": str(backups), **env})


def stored(server: S3, key: str) -> bytes:
    result = server.rclone("cat", f"offsite:{BUCKET}/{key}")
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def dumps(
    postgres_admin_url: str, make_database: Callable[[], str], tmp_path: Path
) -> tuple[Path, list[Path]]:
    urls = [make_database() for _ in range(2)]
    for url in urls:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE messages AS SELECT g AS id FROM generate_series(1, 500) g")
    backups = tmp_path / "backups"
    backups.mkdir()
    names = " ".join(urlsplit(url).path.lstrip("/") for url in urls)
    return backups, backup_run(postgres_admin_url, names, backups)


def test_every_dump_of_a_run_is_stored_off_node_verified_and_a_rerun_sends_nothing(
    s3: S3, dumps: tuple[Path, list[Path]]
) -> None:
    backups, files = dumps
    assert len(files) == 2
    env = {**s3.env(*KEYS["writer"]), "OFFSITE_PREFIX": "production/postgres"}
    first = offsite(env, backups)
    assert first.returncode == 0, first.stderr
    for dump in files:
        copy = stored(s3, f"production/postgres/{dump.name}")
        assert hashlib.sha256(copy).digest() == hashlib.sha256(dump.read_bytes()).digest()
        assert len(copy) == dump.stat().st_size
    assert first.stdout.count("verified") == 2
    again = offsite(env, backups)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("already stored") == 2


def test_wrong_credentials_fail_the_run_naming_the_object(
    s3: S3, dumps: tuple[Path, list[Path]]
) -> None:
    backups, files = dumps
    result = offsite(s3.env("AKWRITER0001", "not-the-secret"), backups)
    assert result.returncode == 1
    assert f"s3://{BUCKET}/{files[0].name}" in result.stderr
    listed = s3.rclone("lsf", f"offsite:{BUCKET}")
    assert listed.stdout == b""


def rendered_backup_pod(s3: S3, prefix: str) -> tuple[Manifest, dict[str, str]]:
    """The production backup pod with offsite on and pointed at `s3`, and its ConfigMap's data."""
    values = load_values("postgres", "production")
    values["backup"]["offsite"] = {
        "enabled": True,
        "endpoint": s3.endpoint,
        "bucket": BUCKET,
        "prefix": prefix,
        "provider": "SeaweedFS",
        "egressCIDRs": ["127.0.0.1/32"],
        "credentialsSecret": {"name": "postgres-offsite"},
    }
    objects = render("postgres", values, "chat-production")
    (cronjob,) = [o for o in objects if o["kind"] == "CronJob"]
    (scripts,) = [o for o in objects if o["kind"] == "ConfigMap"]
    return pod_specs(cronjob)[0], scripts["data"]


def container_env(container: Manifest, secrets: dict[tuple[str, str], str]) -> dict[str, str]:
    """The container's environment as the kubelet gives it: values, and secretKeyRefs resolved."""
    env = {}
    for entry in container["env"]:
        if "value" in entry:
            env[entry["name"]] = entry["value"]
        else:
            ref = entry["valueFrom"]["secretKeyRef"]
            env[entry["name"]] = secrets[(ref["name"], ref["key"])]
    return env


def test_the_rendered_offsite_container_stores_a_run_off_node(
    s3: S3, dumps: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    """The chart's own ConfigMap script, command and environment (keys from the Secret)."""
    backups, files = dumps
    spec, scripts = rendered_backup_pod(s3, "production/postgres")
    (offsite,) = [c for c in containers(spec) if c["name"] == "offsite"]
    access_key, secret_key = KEYS["writer"]
    secrets = {
        ("postgres-offsite", "access-key-id"): access_key,
        ("postgres-offsite", "secret-access-key"): secret_key,
    }
    env = container_env(offsite, secrets)
    assert env.pop("BACKUP_DIR") == "/backups"
    assert env.pop("HOME") == "/tmp"
    mounted = tmp_path / "scripts"
    mounted.mkdir()
    for name, text in scripts.items():
        (mounted / name).write_text(text)
    command = [part.replace("/scripts/", f"{mounted}/") for part in offsite["command"]]
    result = subprocess.run(
        command,
        env={**env, "PATH": _path(), "BACKUP_DIR": str(backups), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("verified") == len(files) == 2
    for dump in files:
        assert stored(s3, f"production/postgres/{dump.name}") == dump.read_bytes()


# After rclone's own upload succeeded, the store loses or alters the object before it is read
# back (a fault injected around the real rclone; the store and the check stay real).
FAULTY_RCLONE = """#!/bin/sh
"{real}" "$@" || exit $?
[ "$1" = copyto ] || exit 0
for last; do :; done
case "$FAULT" in
  missing) "{real}" deletefile "$last" ;;
  differs) "{real}" cat "$last" | tr 'A-Za-z' 'B-ZAb-za' | "{real}" rcat "$last" ;;
esac
"""


@pytest.mark.parametrize("fault", ["missing", "differs"])
def test_a_copy_that_does_not_read_back_as_the_dump_fails_the_run(
    s3: S3, dumps: tuple[Path, list[Path]], tmp_path: Path, fault: str
) -> None:
    backups, files = dumps
    real = shutil.which("rclone", path=_path())
    assert real
    wrapper = tmp_path / "faulty" / "rclone"
    wrapper.parent.mkdir()
    wrapper.write_text(FAULTY_RCLONE.format(real=real))
    wrapper.chmod(0o755)
    env = {**s3.env(*KEYS["writer"]), "FAULT": fault}
    result = run_script(
        "offsite.sh",
        {**env, "PATH": f"{wrapper.parent}{os.pathsep}{_path()}", "BACKUP_DIR": str(backups)},
    )
    assert result.returncode == 1, result.stdout
    key = f"s3://{BUCKET}/{files[0].name}"
    expected = "cannot be read back" if fault == "missing" else "the dump is"
    assert f"{key} " in result.stderr, result.stderr
    assert expected in result.stderr, result.stderr
    assert "verified" not in result.stdout
