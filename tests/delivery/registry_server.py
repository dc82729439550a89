"""A real OCI registry (Debian's docker-registry, the CNCF distribution server) for the tests."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from delivery.helpers import free_port
from harness.lifetime import bound_to_parent

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


@dataclass(frozen=True)
class LocalRegistry:
    url: str
    storage: Path

    def blob_count(self) -> int:
        return len(list((self.storage / "docker/registry/v2/blobs/sha256").glob("*/*")))


@contextmanager
def run_registry(workdir: Path, htpasswd: Path | None = None) -> Iterator[LocalRegistry]:
    binary = shutil.which("docker-registry")
    if binary is None:
        raise RuntimeError("docker-registry is not installed: run `make setup`")
    port = free_port()
    storage = workdir / "storage"
    storage.mkdir(parents=True)
    config = workdir / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log: {level: warn}\n"
        f"storage: {{filesystem: {{rootdirectory: {storage}}}, delete: {{enabled: true}}}}\n"
        f"http: {{addr: 127.0.0.1:{port}}}\n"
        + (f"auth: {{htpasswd: {{realm: test, path: {htpasswd}}}}}\n" if htpasswd else "")
    )
    log = (workdir / "registry.log").open("w")
    proc = subprocess.Popen(
        bound_to_parent([binary, "serve", str(config)]), stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{url}/v2/", timeout=1).status_code in (200, 401):
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"docker-registry did not start: {workdir / 'registry.log'}")
            time.sleep(0.05)
        yield LocalRegistry(url=url, storage=storage)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def _digest(data: bytes) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(data).hexdigest()


Auth = tuple[str, str] | None


def upload_blob(url: str, repository: str, data: bytes, auth: Auth = None) -> str:
    """POST an upload session, then PUT the whole blob (the API's monolithic upload)."""
    digest = _digest(data)
    start = httpx.post(f"{url}/v2/{repository}/blobs/uploads/", timeout=10, auth=auth)
    assert start.status_code == 202, start.text
    location = httpx.URL(url).join(start.headers["Location"])
    done = httpx.put(
        location.copy_merge_params({"digest": digest}),
        content=data,
        headers={"Content-Type": "application/octet-stream"},
        timeout=10,
        auth=auth,
    )
    assert done.status_code == 201, done.text
    return digest


def layer_tar_gz(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), mtime=0)


def push_image(url: str, repository: str, tag: str, payload: bytes, auth: Auth = None) -> str:
    """Push a one-layer OCI image (config + layer + manifest) and return the manifest digest."""
    layer = layer_tar_gz({"app/payload.txt": payload})
    diff_id = _digest(gzip.decompress(layer))
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/app/run"], "Labels": {"org.opencontainers.image.title": tag}},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        },
        sort_keys=True,
    ).encode()
    config_digest = upload_blob(url, repository, config, auth)
    layer_digest = upload_blob(url, repository, layer, auth)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer_digest,
                    "size": len(layer),
                }
            ],
        },
        indent=3,  # unusual formatting on purpose: a re-serialising client would change it
    ).encode()
    return put_manifest(url, repository, tag, manifest, OCI_MANIFEST, auth)


def push_index(url: str, repository: str, tag: str, manifest_digest: str, size: int) -> str:
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": manifest_digest,
                    "size": size,
                    "platform": {"architecture": "amd64", "os": "linux"},
                }
            ],
        }
    ).encode()
    return put_manifest(url, repository, tag, index, OCI_INDEX)


def put_manifest(
    url: str, repository: str, tag: str, body: bytes, media_type: str, auth: Auth = None
) -> str:
    response = httpx.put(
        f"{url}/v2/{repository}/manifests/{tag}",
        content=body,
        headers={"Content-Type": media_type},
        timeout=10,
        auth=auth,
    )
    assert response.status_code == 201, response.text
    digest = _digest(body)
    assert response.headers["Docker-Content-Digest"] == digest
    return digest
