"""Two replicas as production runs them: two gunicorn servers (the image's CMD) on one real S3
server (SeaweedFS `weed`) and one real PostgreSQL. Uploads race for one user's quota across
both, a worker is killed mid-upload, and the orphan sweeper's CLI reclaims what it left."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from harness.appservers import gunicorn_master
from harness.s3 import ADMIN_KEYS, S3Server
from harness.tokens import TokenIssuer
from media_storage.migrate import upgrade
from media_storage.s3store import object_key
from minio.error import S3Error

APP = ("media_storage.gunicorn_conf", "media_storage.wsgi:app")
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
FILE_BYTES = 2000
QUOTA_FILES = 8


def png(size: int) -> bytes:
    return (PNG + os.urandom(size))[:size]


@dataclass
class Replica:
    url: str
    master: subprocess.Popen[bytes]
    spool: Path

    def worker_pid(self) -> int:
        path = Path(f"/proc/{self.master.pid}/task/{self.master.pid}/children")
        (pid,) = (int(p) for p in path.read_text().split())
        return pid


@dataclass
class Cluster:
    replicas: list[Replica]
    s3: S3Server
    bucket: str
    database_url: str
    env: dict[str, str]

    def objects(self) -> set[str]:
        client = self.s3.client()
        listed = client.list_objects(self.bucket, recursive=True)
        return {str(item.object_name).rsplit("/", 1)[-1] for item in listed}

    def has_object(self, digest: str) -> bool:
        try:
            self.s3.client().stat_object(self.bucket, object_key(digest))
        except S3Error:
            return False
        return True

    def rows(self, user_id: str) -> list[tuple[str, int]]:
        with psycopg.connect(self.database_url) as conn:
            found = conn.execute(
                "SELECT sha256, size FROM files WHERE user_id = %s", (user_id,)
            ).fetchall()
        return [(str(digest), int(size)) for digest, size in found]

    def usage(self, user_id: str) -> int:
        with psycopg.connect(self.database_url) as conn:
            row = conn.execute("SELECT bytes FROM usage WHERE user_id = %s", (user_id,)).fetchone()
        return int(row[0]) if row else 0

    def sweep(self, **extra: str) -> subprocess.CompletedProcess[str]:
        """The CronJob's command, `python -m media_storage.sweep`, with the replicas' settings."""
        return subprocess.run(
            [sys.executable, "-m", "media_storage.sweep"],
            env={**self.env, **extra},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def wait_until(condition: Callable[[], bool], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.05)


@pytest.fixture(scope="module")
def token_issuer() -> Iterator[TokenIssuer]:
    """One JWKS server for the module's replicas (they start once: gunicorn is slow to)."""
    issuer = TokenIssuer()
    yield issuer
    issuer.close()


@pytest.fixture(scope="module")
def catalog_url(postgres_admin_url: str) -> Iterator[str]:
    """A database of the module's own, migrated as the chart's Job does before the pods."""
    name = f"media_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = postgres_admin_url.rsplit("/", 1)[0] + f"/{name}"
    upgrade(url)
    yield url
    with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory,
    catalog_url: str,
    s3_server: S3Server,
    token_issuer: TokenIssuer,
) -> Iterator[Cluster]:
    tmp_path = tmp_path_factory.mktemp("replicas")
    with s3_server.bucket() as bucket, contextlib.ExitStack() as stack:
        env = {
            **os.environ,
            "DATABASE_URL": catalog_url,
            "MEDIA_STORAGE": "s3",
            "MEDIA_S3_ENDPOINT": s3_server.endpoint,
            "MEDIA_S3_BUCKET": bucket,
            "MEDIA_S3_ACCESS_KEY": ADMIN_KEYS[0],
            "MEDIA_S3_SECRET_KEY": ADMIN_KEYS[1],
            "MEDIA_USER_QUOTA_BYTES": str(QUOTA_FILES * FILE_BYTES),
            "JWKS_URL": token_issuer.jwks_url,
            "JWT_ISSUER": token_issuer.issuer,
            "JWT_AUDIENCE": token_issuer.audience,
            "GUNICORN_WORKER_TMP_DIR": str(tmp_path),
            "WEB_CONCURRENCY": "1",
        }
        replicas = []
        for index in range(2):
            spool = tmp_path / f"replica-{index}" / "spool"  # each pod's own /tmp
            replica_env = {**env, "MEDIA_SPOOL_DIR": str(spool)}
            url, master = stack.enter_context(gunicorn_master(*APP, replica_env))
            replicas.append(Replica(url, master, spool))
        yield Cluster(replicas, s3_server, bucket, catalog_url, env)


def test_racing_uploads_across_replicas_admit_exactly_the_quota(
    cluster: Cluster, token_issuer: TokenIssuer
) -> None:
    user = str(uuid.uuid4())
    headers = token_issuer.bearer(user, "alice")
    attempts = QUOTA_FILES * 3
    contents = [png(FILE_BYTES) for _ in range(attempts)]
    start = threading.Barrier(attempts)
    answers: list[httpx.Response] = []

    def attempt(index: int) -> None:
        replica = cluster.replicas[index % 2]
        with httpx.Client(base_url=replica.url, headers=headers, timeout=60) as client:
            start.wait(timeout=60)
            answers.append(client.post("/files", files={"file": (f"{index}.png", contents[index])}))

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(attempts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert Counter(a.status_code for a in answers) == {
        201: QUOTA_FILES,
        507: attempts - QUOTA_FILES,
    }
    admitted = {a.json()["sha256"] for a in answers if a.status_code == 201}
    assert {digest for digest, _ in cluster.rows(user)} == admitted
    assert cluster.usage(user) == QUOTA_FILES * FILE_BYTES
    # Refused uploads took their objects back: of all contents, exactly the admitted are stored.
    attempted = {hashlib.sha256(content).hexdigest() for content in contents}
    assert cluster.objects() & attempted == admitted
    for replica in cluster.replicas:
        listed = httpx.get(f"{replica.url}/files", headers=headers, timeout=30).json()["items"]
        assert {item["sha256"] for item in listed} == admitted


def test_downloads_through_either_replica_keep_etag_and_range(
    cluster: Cluster, token_issuer: TokenIssuer
) -> None:
    headers = token_issuer.bearer(str(uuid.uuid4()), "bob")
    data = png(FILE_BYTES)
    first, second = (r.url for r in cluster.replicas)
    created = httpx.post(f"{first}/files", headers=headers, files={"file": ("p.png", data)})
    assert created.status_code == 201, created.text
    body = created.json()
    with httpx.Client(base_url=second, headers=headers, timeout=30) as client:
        whole = client.get(f"/files/{body['id']}")
        assert whole.content == data
        assert whole.headers["ETag"] == f'"{hashlib.sha256(data).hexdigest()}"'
        assert whole.headers["Accept-Ranges"] == "bytes"
        part = client.get(f"/files/{body['id']}", headers={"Range": "bytes=100-199"})
        assert part.status_code == 206
        assert part.content == data[100:200]
        assert part.headers["Content-Range"] == f"bytes 100-199/{FILE_BYTES}"
        tail = client.get(f"/files/{body['id']}", headers={"Range": "bytes=-10"})
        assert tail.content == data[-10:]
        cached = client.get(
            f"/files/{body['id']}", headers={"If-None-Match": whole.headers["ETag"]}
        )
        assert cached.status_code == 304
        assert client.delete(f"/files/{body['id']}").status_code == 204
    assert not cluster.has_object(body["sha256"])


def test_a_worker_killed_mid_body_leaves_no_object_and_no_row(
    cluster: Cluster, token_issuer: TokenIssuer
) -> None:
    user = str(uuid.uuid4())
    token = token_issuer.issue(user, "carol")
    replica = cluster.replicas[0]
    before = cluster.objects()
    boundary = "cut"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="p.png"\r\n\r\n'
    ).encode() + png(100_000)
    request = (
        f"POST /files HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(head) + 300_000}\r\n\r\n"
    ).encode()
    port = int(replica.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request + head)
        wait_until(
            lambda: any(p.stat().st_size > 0 for p in replica.spool.glob("upload-*.part")),
            30,
            "the upload never reached the spool",
        )
        os.kill(replica.worker_pid(), signal.SIGKILL)
    assert cluster.objects() == before
    assert cluster.rows(user) == []
    assert cluster.usage(user) == 0


def test_a_worker_killed_between_put_and_commit_leaves_an_orphan_the_sweeper_reclaims(
    cluster: Cluster, token_issuer: TokenIssuer
) -> None:
    user = str(uuid.uuid4())
    headers = token_issuer.bearer(user, "dave")
    first, second = cluster.replicas
    kept = httpx.post(f"{second.url}/files", headers=headers, files={"file": ("k.png", png(500))})
    assert kept.status_code == 201, kept.text
    data = png(FILE_BYTES)
    digest = hashlib.sha256(data).hexdigest()
    outcome: list[BaseException | httpx.Response] = []

    def doomed_upload() -> None:
        try:
            outcome.append(
                httpx.post(
                    f"{first.url}/files",
                    headers=headers,
                    files={"file": ("d.png", data)},
                    timeout=60,
                )
            )
        except httpx.TransportError as exc:
            outcome.append(exc)

    # Hold the user's usage row: the upload PUTs its object, then waits for the row in its
    # transaction, where its worker is killed (the widest window a crash can hit).
    with psycopg.connect(cluster.database_url) as blocker:
        blocker.execute("SELECT bytes FROM usage WHERE user_id = %s FOR UPDATE", (user,))
        thread = threading.Thread(target=doomed_upload)
        thread.start()
        wait_until(lambda: cluster.has_object(digest), 60, "the object was never PUT")
        os.kill(first.worker_pid(), signal.SIGKILL)
        thread.join(timeout=60)
        blocker.rollback()
    assert len(outcome) == 1
    assert isinstance(outcome[0], httpx.TransportError)

    # No row without its object (the only row is the kept file's); the orphan is invisible.
    assert cluster.rows(user) == [(kept.json()["sha256"], 500)]
    listed = httpx.get(f"{second.url}/files", headers=headers, timeout=30).json()["items"]
    assert [item["sha256"] for item in listed] == [kept.json()["sha256"]]
    assert cluster.has_object(digest)

    young = cluster.sweep()  # the default grace: an upload might still be in flight
    assert young.returncode == 0, young.stderr
    assert cluster.has_object(digest)

    swept = cluster.sweep(MEDIA_ORPHAN_GRACE_SECONDS="0.001")
    assert swept.returncode == 0, swept.stderr
    assert '"removed": 1' in swept.stderr + swept.stdout
    assert not cluster.has_object(digest)
    assert cluster.has_object(kept.json()["sha256"])
    download = httpx.get(f"{second.url}/files/{kept.json()['id']}", headers=headers, timeout=30)
    assert download.status_code == 200


def test_the_sweeper_refuses_bad_settings_with_exit_2(cluster: Cluster) -> None:
    result = cluster.sweep(MEDIA_STORAGE="s3", MEDIA_S3_BUCKET="")
    assert result.returncode == 2
    assert "MEDIA_S3_BUCKET" in result.stderr
