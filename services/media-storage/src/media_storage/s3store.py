"""The S3 backend: content-addressed objects in an S3-compatible bucket (AWS, SeaweedFS, Garage,
Ceph RGW) through the `minio` client.

An upload is received into a local spool file first (hashed as it arrives), so the object is
written only once its digest is known, to its final key, with ONE PutObject: S3 makes an object
visible only when its PUT completes, so a reader never sees a partial object, and a writer
killed mid-PUT leaves nothing behind (no multipart upload to abort). The cost: the client
signs the body, so one upload's bytes (at most MEDIA_MAX_UPLOAD_BYTES) sit in memory while the
PUT runs.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from typing import BinaryIO
from urllib.parse import urlsplit

import urllib3
from minio import Minio
from minio.error import S3Error
from minio.helpers import MAX_PART_SIZE, MIN_PART_SIZE

from media_storage.blobs import _DIGEST, PendingBlob, Spool, check_digest

KEY_PREFIX = "blobs/"
MISSING_CODES = frozenset({"NoSuchKey", "NoSuchObject"})
CONNECT_TIMEOUT_SECONDS = 5.0
READ_TIMEOUT_SECONDS = 60.0


def make_client(endpoint: str, region: str, access_key: str, secret_key: str) -> Minio:
    """A client for `endpoint` (http(s)://host[:port]) with timeouts and retries with backoff."""
    parts = urlsplit(endpoint)
    if parts.scheme not in {"http", "https"} or not parts.netloc or parts.path not in {"", "/"}:
        raise ValueError(f"MEDIA_S3_ENDPOINT must look like https://host[:port], got {endpoint!r}")
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT_SECONDS, read=READ_TIMEOUT_SECONDS),
        retries=urllib3.Retry(total=3, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
        maxsize=32,
    )
    return Minio(
        parts.netloc,
        access_key=access_key,
        secret_key=secret_key,
        secure=parts.scheme == "https",
        region=region,
        http_client=http,
    )


def object_key(digest: str) -> str:
    check_digest(digest)
    return f"{KEY_PREFIX}{digest[:2]}/{digest[2:4]}/{digest}"


class S3Store:
    """Objects under `blobs/` of one bucket; uploads spool to a local directory first."""

    def __init__(self, client: Minio, bucket: str, spool: Spool) -> None:
        self.client = client
        self.bucket = bucket
        self.spool = spool

    def prepare(self) -> None:
        self.spool.prepare()

    def begin(self) -> PendingBlob:
        return self.spool.begin()

    def publish(self, pending: PendingBlob, digest: str) -> None:
        """PUT the sealed spool file to its content address (one request: atomic), then drop it.

        Idempotent: an existing object of this key has the same bytes by construction.
        """
        with pending.path.open("rb") as body:
            self.client.put_object(
                self.bucket,
                object_key(digest),
                body,
                length=pending.size,
                part_size=min(max(MIN_PART_SIZE, pending.size), MAX_PART_SIZE),
            )
        pending.discard()
        pending.published = True

    def open(self, digest: str) -> BinaryIO:
        """A seekable reader of the object (FileNotFoundError when it is missing)."""
        return io.BufferedReader(_ObjectReader(self.client, self.bucket, object_key(digest)))

    def exists(self, digest: str) -> bool:
        try:
            self.client.stat_object(self.bucket, object_key(digest))
        except S3Error as exc:
            if exc.code in MISSING_CODES:
                return False
            raise
        return True

    def remove(self, digest: str) -> None:
        self.client.remove_object(self.bucket, object_key(digest))  # no error when absent

    def stored_before(self, cutoff: float) -> Iterator[str]:
        """Digests of the objects last written before `cutoff` (seconds since the epoch)."""
        limit = dt.datetime.fromtimestamp(cutoff, dt.UTC)
        for item in self.client.list_objects(self.bucket, prefix=KEY_PREFIX, recursive=True):
            name = (item.object_name or "").rsplit("/", 1)[-1]
            modified = item.last_modified
            if _DIGEST.fullmatch(name) and modified is not None and modified < limit:
                yield name

    def check_writable(self) -> None:
        """OSError naming the reason unless uploads can be spooled and the bucket answers."""
        self.spool.check_writable()
        try:
            found = self.client.bucket_exists(self.bucket)
        except (S3Error, urllib3.exceptions.HTTPError) as exc:
            raise OSError(f"object store unreachable: {exc}") from exc
        if not found:
            raise OSError(f"bucket {self.bucket!r} does not exist (MEDIA_S3_BUCKET)")


class _ObjectReader(io.RawIOBase):
    """Reads an object from the current position: one GET per seek, from that offset on."""

    def __init__(self, client: Minio, bucket: str, key: str) -> None:
        self._client, self._bucket, self._key = client, bucket, key
        self._position = 0
        self._body: urllib3.BaseHTTPResponse | None = self._get(0)  # a missing object fails now

    def _get(self, offset: int) -> urllib3.BaseHTTPResponse:
        try:
            return self._client.get_object(self._bucket, self._key, offset=offset)
        except S3Error as exc:
            if exc.code in MISSING_CODES:
                raise FileNotFoundError(f"object {self._key} is missing") from exc
            raise

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self._position
        elif whence != io.SEEK_SET:
            raise io.UnsupportedOperation("seek from the end is not supported")
        if offset != self._position:
            self._release()
            self._position = offset
        return self._position

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._body is None:
            self._body = self._get(self._position)
        data = self._body.read(len(buffer))
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)

    def _release(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body.release_conn()
            self._body = None

    def close(self) -> None:
        self._release()
        super().close()
