"""The storage backend interface and the choice of backend from the settings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO, Protocol

from media_storage.blobs import BlobStore, PendingBlob, Spool
from media_storage.config import Settings


class ObjectStore(Protocol):
    """Content-addressed objects: written whole or not at all, named by their SHA-256."""

    spool: Spool  # where uploads are received before they are published

    def prepare(self) -> None:
        """Make what the store needs locally and reclaim spool files of dead workers."""

    def begin(self) -> PendingBlob:
        """A locked local spool file to receive an upload into."""

    def publish(self, pending: PendingBlob, digest: str) -> None:
        """Make the sealed spool file the object of `digest` (atomically; idempotent)."""

    def open(self, digest: str) -> BinaryIO:
        """A seekable reader of the object (FileNotFoundError when it is missing)."""

    def exists(self, digest: str) -> bool: ...

    def remove(self, digest: str) -> None:
        """Remove the object (no error when it is absent)."""

    def stored_before(self, cutoff: float) -> Iterator[str]:
        """Digests of the objects last written before `cutoff` (seconds since the epoch)."""

    def check_writable(self) -> None:
        """Raise OSError naming the reason unless an upload could be stored now."""


def make_store(settings: Settings) -> ObjectStore:
    if settings.media_storage == "filesystem":
        assert settings.media_root is not None  # Settings refuse it otherwise
        return BlobStore(
            settings.media_root,
            min_free_bytes=settings.media_min_free_bytes,
            sweep_interval=settings.media_temp_sweep_seconds,
        )
    return _s3_store(settings)


def _s3_store(settings: Settings) -> ObjectStore:
    from media_storage.s3store import S3Store, make_client  # only the s3 backend needs minio

    endpoint, bucket = settings.media_s3_endpoint, settings.media_s3_bucket
    access_key, secret_key = settings.media_s3_access_key, settings.media_s3_secret_key
    # Settings refuse MEDIA_STORAGE=s3 without these.
    assert endpoint is not None
    assert bucket is not None
    assert access_key is not None
    assert secret_key is not None
    client = make_client(endpoint, settings.media_s3_region, access_key, secret_key)
    spool = Spool(
        settings.media_spool_dir,
        min_free_bytes=settings.media_min_free_bytes,
        sweep_interval=settings.media_temp_sweep_seconds,
    )
    return S3Store(client, bucket, spool)
