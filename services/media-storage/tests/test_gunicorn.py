"""The production server (gunicorn, as in service.yaml) with real sockets and chunked bodies."""

from __future__ import annotations

import hashlib
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from harness.appservers import gunicorn_server
from harness.slowclients import slow_clients
from harness.tokens import TokenIssuer
from media_storage.migrate import upgrade

LIMIT = 256 * 1024


@pytest.fixture
def server(tmp_path: Path, database_url: str, token_issuer: TokenIssuer) -> Iterator[str]:
    upgrade(database_url)  # the chart's migration Job does this before the pods start
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "MEDIA_ROOT": str(tmp_path / "media"),
        "MEDIA_MAX_UPLOAD_BYTES": str(LIMIT),
        "JWKS_URL": token_issuer.jwks_url,
        "JWT_ISSUER": token_issuer.issuer,
        "JWT_AUDIENCE": token_issuer.audience,
        "GUNICORN_WORKER_TMP_DIR": str(tmp_path),
    }
    with gunicorn_server("media_storage.gunicorn_conf", "media_storage.wsgi:app", env) as url:
        yield url


def test_upload_and_ranged_download_through_gunicorn(
    server: str, token_issuer: TokenIssuer, tmp_path: Path
) -> None:
    headers = token_issuer.bearer(str(uuid.uuid4()), "alice")
    data = b"\x89PNG\r\n\x1a\n" + os.urandom(100_000)
    with httpx.Client(base_url=server, headers=headers, timeout=10) as client:
        created = client.post("/files", files={"file": ("p.png", data)})
        assert created.status_code == 201, created.text
        file_id = created.json()["id"]
        assert created.json()["sha256"] == hashlib.sha256(data).hexdigest()

        part = client.get(f"/files/{file_id}", headers={"Range": "bytes=1000-1999"})
        assert part.status_code == 206
        assert part.content == data[1000:2000]
        with client.stream("GET", f"/files/{file_id}") as whole:
            assert b"".join(whole.iter_bytes()) == data
        assert client.get("/ready").status_code == 200
        assert client.delete(f"/files/{file_id}").status_code == 204


CHUNKS = 1024  # of 64 KiB


def test_chunked_upload_over_the_limit_is_cut_off_while_streaming(
    server: str, token_issuer: TokenIssuer, tmp_path: Path
) -> None:
    """No Content-Length: only the streaming check can stop it, long before the body ends.

    64 MiB, 256x the limit: far more than the kernel's loopback socket buffers (a few MiB), which
    a client fills before a busy server has read anything (4 MiB did fit, and the test failed).
    """
    headers = token_issuer.bearer(str(uuid.uuid4()), "alice")
    boundary = "limit-test"
    sent = 0

    def body() -> Iterator[bytes]:
        nonlocal sent
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="big.png"\r\n\r\n'
        ).encode()
        yield b"\x89PNG\r\n\x1a\n"
        for _ in range(CHUNKS):
            chunk = b"\x00" * 65536
            sent += len(chunk)
            yield chunk
        yield f"\r\n--{boundary}--\r\n".encode()

    content_type = f"multipart/form-data; boundary={boundary}"
    try:
        with httpx.Client(base_url=server, headers=headers, timeout=10) as client:
            response = client.post("/files", content=body(), headers={"Content-Type": content_type})
        assert response.status_code == 413
    except httpx.TransportError:
        # The server may close the socket before the client stops sending; that is a refusal too.
        pass
    assert sent < CHUNKS * 65536, "the server read the whole oversized body"
    media = tmp_path / "media"
    leftovers = [p for p in media.rglob("*") if p.is_file()]
    assert leftovers == []
    assert httpx.get(f"{server}/health", timeout=5).status_code == 200


def test_slow_clients_do_not_starve_the_health_probe(server: str) -> None:
    """32 connections trickling their headers must not leave the liveness probe waiting."""
    with slow_clients(server, count=32), httpx.Client(base_url=server, timeout=10) as client:
        for _ in range(3):
            assert client.get("/health").status_code == 200


def test_an_interrupted_upload_leaves_no_temporary_file(
    server: str, token_issuer: TokenIssuer, tmp_path: Path
) -> None:
    """The client hangs up mid-body: its temporary file goes at once, not at the next restart."""
    boundary = "cut-short"
    head = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="p.png"\r\n\r\n'
        ).encode()
        + b"\x89PNG\r\n\x1a\n"
        + b"\x01" * 100_000
    )
    address = urlsplit(server)
    token = token_issuer.issue(str(uuid.uuid4()), "alice")
    request = (
        f"POST /files HTTP/1.1\r\nHost: {address.hostname}\r\n"
        f"Authorization: Bearer {token}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(head) + 200_000}\r\n\r\n"
    ).encode()
    temporary = tmp_path / "media" / "tmp"
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(request + head)
        deadline = time.monotonic() + 30
        while not any(temporary.iterdir()):  # the upload is being received
            assert time.monotonic() < deadline, "the upload never started"
            time.sleep(0.05)
    deadline = time.monotonic() + 30
    while leftovers := list(temporary.iterdir()):
        assert time.monotonic() < deadline, f"temporary files left behind: {leftovers}"
        time.sleep(0.05)


def test_uploads_beyond_the_in_flight_bound_get_503_until_one_finishes(
    tmp_path: Path, database_url: str, token_issuer: TokenIssuer
) -> None:
    """MEDIA_MAX_CONCURRENT_UPLOADS bounds the spool (the pod's /tmp): one more is refused with
    Retry-After, not spooled; the slot comes back when the upload in flight ends."""
    upgrade(database_url)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "MEDIA_ROOT": str(tmp_path / "media"),
        "MEDIA_MAX_CONCURRENT_UPLOADS": "1",
        "JWKS_URL": token_issuer.jwks_url,
        "JWT_ISSUER": token_issuer.issuer,
        "JWT_AUDIENCE": token_issuer.audience,
        "GUNICORN_WORKER_TMP_DIR": str(tmp_path),
    }
    token = token_issuer.issue(str(uuid.uuid4()), "alice")
    boundary = "held"
    head = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="p.png"\r\n\r\n'
        ).encode()
        + b"\x89PNG\r\n\x1a\n"
        + b"\x01" * 100_000  # more than one 64 KiB read of the body
    )
    tail = f"\r\n--{boundary}--\r\n".encode()
    spool = tmp_path / "media" / "tmp"
    with gunicorn_server("media_storage.gunicorn_conf", "media_storage.wsgi:app", env) as url:
        address = urlsplit(url)
        request = (
            f"POST /files HTTP/1.1\r\nHost: {address.hostname}\r\nConnection: close\r\n"
            f"Authorization: Bearer {token}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {len(head) + 1000 + len(tail)}\r\n\r\n"
        ).encode()
        assert address.hostname is not None
        assert address.port is not None
        with socket.create_connection((address.hostname, address.port), timeout=30) as held:
            held.sendall(request + head)
            deadline = time.monotonic() + 30
            while not list(spool.glob("upload-*.part")):  # the first upload holds the slot
                assert time.monotonic() < deadline, "the first upload never started"
                time.sleep(0.05)
            headers = {"Authorization": f"Bearer {token}"}
            files = {"file": ("q.png", b"\x89PNG\r\n\x1a\n" + os.urandom(500))}
            refused = httpx.post(f"{url}/files", headers=headers, files=files, timeout=30)
            assert refused.status_code == 503, refused.text
            assert refused.headers["Retry-After"] == "5"
            held.sendall(b"\x02" * 1000 + tail)
            answer = held.recv(65536).split(b"\r\n", 1)[0]
            assert answer.endswith(b"201 CREATED")
        admitted = httpx.post(f"{url}/files", headers=headers, files=files, timeout=30)
        assert admitted.status_code == 201, admitted.text
