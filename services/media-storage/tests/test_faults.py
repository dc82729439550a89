"""Issue 27.4 and 27.5 through the real gunicorn server: a full volume (a 1 MiB tmpfs) and a
worker SIGKILLed mid-upload."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from harness.appservers import gunicorn_master
from harness.tokens import TokenIssuer
from media_storage.migrate import upgrade

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
APP = ("media_storage.gunicorn_conf", "media_storage.wsgi:app")


def png(size: int) -> bytes:
    return (PNG + os.urandom(size))[:size]


def wait_until(condition: Callable[[], bool], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.05)


@pytest.fixture
def catalog_url(database_url: str) -> str:
    """A migrated catalog database (the chart's migration Job does this before the pods)."""
    upgrade(database_url)
    return database_url


def server_env(
    root: Path, catalog_url: str, token_issuer: TokenIssuer, **extra: str
) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": catalog_url,
        "MEDIA_ROOT": str(root),
        "JWKS_URL": token_issuer.jwks_url,
        "JWT_ISSUER": token_issuer.issuer,
        "JWT_AUDIENCE": token_issuer.audience,
        "GUNICORN_WORKER_TMP_DIR": str(root.parent),
        **extra,
    }


@pytest.fixture
def small_volume(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB tmpfs: writes beyond it fail with ENOSPC, as on a full PVC."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI and this machine run the tests as root)")
    mountpoint = tmp_path / "volume"
    mountpoint.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mountpoint)], check=True)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "--lazy", str(mountpoint)], check=False)


def free_bytes(path: Path) -> int:
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def test_full_volume_answers_507_goes_unready_and_recovers(
    small_volume: Path, catalog_url: str, token_issuer: TokenIssuer
) -> None:
    root = small_volume / "media"
    env = server_env(
        root,
        catalog_url,
        token_issuer,
        MEDIA_MAX_UPLOAD_BYTES="524288",
        MEDIA_MIN_FREE_BYTES="131072",
    )
    headers = token_issuer.bearer(str(uuid.uuid4()), "alice")
    acknowledged: list[str] = []
    with (
        gunicorn_master(*APP, env) as (url, _master),
        httpx.Client(base_url=url, headers=headers, timeout=30) as client,
    ):
        first = client.post("/files", files={"file": ("a.png", png(100_000))})
        assert first.status_code == 201, first.text
        acknowledged.append(first.json()["id"])
        assert client.get("/ready").status_code == 200

        # Something else fills the volume, leaving less than one upload's room.
        filler = small_volume / "filler"
        filler.write_bytes(b"\0" * (free_bytes(small_volume) - 48 * 1024))
        refused = client.post("/files", files={"file": ("b.png", png(200_000))})
        assert refused.status_code == 507, refused.text
        assert "storage volume is full" in refused.json()["detail"]
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["storage"]["error"] == "DiskFullError"
        assert list((root / "tmp").iterdir()) == []  # the refused upload left nothing

        # Space comes back: ready again and storing, without a restart.
        filler.unlink()
        wait_until(lambda: client.get("/ready").status_code == 200, 30, "never ready again")
        second = client.post("/files", files={"file": ("b.png", png(200_000))})
        assert second.status_code == 201, second.text
        acknowledged.append(second.json()["id"])
        stored = [item["id"] for item in client.get("/files").json()["items"]]
    assert sorted(stored) == sorted(acknowledged)  # acknowledged vs stored


def status(url: str) -> int | None:
    """The status `url` answers with; None while no worker accepts (one is starting)."""
    try:
        return httpx.get(url, timeout=30).status_code
    except httpx.TransportError:
        return None


def worker_pids(master: subprocess.Popen[bytes]) -> set[int]:
    children = Path(f"/proc/{master.pid}/task/{master.pid}/children").read_text().split()
    return {int(pid) for pid in children}


def start_slow_upload(url: str, token: str, sent: int, total: int) -> socket.socket:
    """Sends the head of a `total`-byte upload (`sent` bytes of the file) and leaves it open."""
    boundary = "slow"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="p.png"\r\n\r\n'
    ).encode() + png(sent)
    tail = f"\r\n--{boundary}--\r\n".encode()
    address = urlsplit(url)
    request = (
        f"POST /files HTTP/1.1\r\nHost: {address.hostname}\r\nConnection: close\r\n"
        f"Authorization: Bearer {token}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(head) + (total - sent) + len(tail)}\r\n\r\n"
    ).encode()
    sock = socket.create_connection((address.hostname, address.port), timeout=30)
    sock.sendall(request + head)
    return sock


def finish_upload(sock: socket.socket, remaining: int) -> str:
    sock.sendall(os.urandom(remaining) + b"\r\n--slow--\r\n")
    response = b""
    while chunk := sock.recv(65536):
        response += chunk
    sock.close()
    return response.split(b"\r\n", 1)[0].decode()


def parts(temporary: Path) -> set[Path]:
    return {p for p in temporary.glob("upload-*.part") if p.stat().st_size > 0}


def test_partial_upload_of_a_killed_worker_is_reclaimed_while_running(
    tmp_path: Path, catalog_url: str, token_issuer: TokenIssuer
) -> None:
    root = tmp_path / "media"
    temporary = root / "tmp"
    env = server_env(
        root, catalog_url, token_issuer, MEDIA_TEMP_SWEEP_SECONDS="0.2", WEB_CONCURRENCY="1"
    )
    token = token_issuer.issue(str(uuid.uuid4()), "alice")
    with gunicorn_master(*APP, env) as (url, master):
        # A worker dies (SIGKILL) while it receives an upload: its temporary file is orphaned.
        doomed = start_slow_upload(url, token, 100_000, 300_000)
        wait_until(lambda: len(parts(temporary)) == 1, 30, "the first upload never started")
        (orphan,) = parts(temporary)
        (worker,) = worker_pids(master)
        os.kill(worker, signal.SIGKILL)
        doomed.close()
        wait_until(
            lambda: worker_pids(master) - {worker} != set(), 60, "gunicorn started no new worker"
        )
        wait_until(lambda: status(f"{url}/health") == 200, 60, "no new worker")

        # A live upload in the new worker is in progress meanwhile: it must not be touched.
        live = start_slow_upload(url, token, 100_000, 300_000)
        wait_until(lambda: len(parts(temporary) - {orphan}) == 1, 30, "no second upload")
        (in_progress,) = parts(temporary) - {orphan}
        wait_until(
            lambda: status(f"{url}/ready") == 200 and not orphan.exists(),
            60,
            f"the killed worker's {orphan.name} was not reclaimed while running",
        )
        assert in_progress.exists(), "a live worker's upload was reclaimed"
        assert finish_upload(live, 200_000).endswith("201 CREATED")
        assert list(temporary.glob("upload-*.part")) == []
