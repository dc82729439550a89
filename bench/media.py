"""media-storage uploads per second through two replicas vs one (issue 30).

Each replica is the image's server (gunicorn, one gevent worker) with the S3 backend, on one real
S3 server (SeaweedFS `weed`) and one real PostgreSQL started here. The same clients send the same
kind of uploads (distinct content, one user each) to one replica (the anchor) and round-robin to
two (ours), taking turns so a change of load hits both alike.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
from harness.appservers import gunicorn_master
from harness.s3 import ADMIN_KEYS, weed_s3_server
from harness.servers import PostgresServer
from harness.tokens import TokenIssuer
from media_storage.migrate import upgrade

from bench.table import Row

APP = ("media_storage.gunicorn_conf", "media_storage.wsgi:app")
FILE_BYTES = 64 * 1024
CLIENTS = 16
UPLOADS = 128  # per round and setup
ROUNDS = 2
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


def uploads_per_second(urls: list[str], issuer: TokenIssuer) -> float:
    """UPLOADS uploads from CLIENTS threads (a connection pool each), spread round-robin over
    `urls`. One client per thread: making an httpx client costs more than an upload here."""
    bodies = [(PNG + os.urandom(FILE_BYTES))[:FILE_BYTES] for _ in range(UPLOADS)]

    def client_share(client_index: int) -> None:
        headers = issuer.bearer(str(uuid.uuid4()), f"bench{client_index}")
        with httpx.Client(headers=headers, timeout=120) as client:
            for index in range(client_index, UPLOADS, CLIENTS):
                url = urls[index % len(urls)]
                files = {"file": (f"{index}.png", bodies[index])}
                answer = client.post(f"{url}/files", files=files)
                if answer.status_code != 201:
                    raise RuntimeError(f"upload {index}: {answer.status_code} {answer.text}")

    started = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(client_share, range(CLIENTS)))
    return UPLOADS / (time.perf_counter() - started)


def run() -> list[Row]:
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-media-")))
        postgres = PostgresServer().init()
        postgres.start()
        stack.callback(postgres.destroy)
        with psycopg.connect(postgres.url(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE media")
        database_url = postgres.url("media")
        upgrade(database_url)
        s3 = stack.enter_context(weed_s3_server(work))
        bucket = stack.enter_context(s3.bucket())
        issuer = TokenIssuer()
        stack.callback(issuer.close)
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "MEDIA_STORAGE": "s3",
            "MEDIA_S3_ENDPOINT": s3.endpoint,
            "MEDIA_S3_BUCKET": bucket,
            "MEDIA_S3_ACCESS_KEY": ADMIN_KEYS[0],
            "MEDIA_S3_SECRET_KEY": ADMIN_KEYS[1],
            "JWKS_URL": issuer.jwks_url,
            "JWT_ISSUER": issuer.issuer,
            "JWT_AUDIENCE": issuer.audience,
            "GUNICORN_WORKER_TMP_DIR": str(work),
            "WEB_CONCURRENCY": "1",
            "LOG_LEVEL": "WARNING",
        }
        urls = []
        for index in range(2):
            replica = {**env, "MEDIA_SPOOL_DIR": str(work / f"spool-{index}")}
            url, _master = stack.enter_context(gunicorn_master(*APP, replica))
            urls.append(url)
        uploads_per_second(urls, issuer)  # warm-up: connections, imports, first volumes
        one = two = 0.0
        for _ in range(ROUNDS):
            one += uploads_per_second(urls[:1], issuer) / ROUNDS
            two += uploads_per_second(urls, issuer) / ROUNDS
    note = (
        f"{FILE_BYTES // 1024} KiB uploads, {CLIENTS} clients, one weed S3 + one PostgreSQL on "
        f"this machine ({os.cpu_count()} CPUs shared with both); anchor: one replica"
    )
    return [Row("media-storage uploads/s, 2 replicas (anchor 1)", two, one, "uploads/s", note)]
