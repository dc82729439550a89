"""Content-addressed blobs on a filesystem volume (the backend of `make run`), and the spool of
temporary files every backend receives uploads into.

A blob lives at `<root>/blobs/<h[0:2]>/<h[2:4]>/<h>` where `h` is the SHA-256 hex digest of its
bytes, so its path is derived only from a digest this service computed itself. Writes are atomic:
bytes go to a temporary file on the same filesystem (`<root>/tmp`), are fsynced, and the file is
renamed into place; a reader never sees a partial blob.

A temporary file is flock()ed by the worker writing it for as long as that worker has it open.
The kernel drops the lock when the worker dies (even by SIGKILL), so a temporary file nobody
holds a lock on belongs to no live worker: the store reclaims those while it runs (at most every
`sweep_interval` seconds, on uploads and readiness checks), not only at start.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

_DIGEST = re.compile(r"[0-9a-f]{64}")
TEMP_PREFIX, TEMP_SUFFIX = "upload-", ".part"
DEFAULT_SWEEP_SECONDS = 30.0


class InvalidDigestError(ValueError):
    """A value that should be a SHA-256 hex digest is not one."""


@dataclass
class PendingBlob:
    """Bytes being received into a temporary file, hashed and counted as they arrive."""

    path: Path
    handle: BinaryIO
    size: int = 0
    published: bool = False
    _hash: hashlib._Hash = field(default_factory=hashlib.sha256)

    def write(self, chunk: bytes) -> None:
        self.handle.write(chunk)
        self._hash.update(chunk)
        self.size += len(chunk)

    def seal(self) -> str:
        """Flush the bytes to stable storage and return their SHA-256 hex digest.

        The file stays open (and locked) until it is published or discarded, so no sweep can
        take it in between.
        """
        self.handle.flush()
        os.fsync(self.handle.fileno())
        return self._hash.hexdigest()

    def discard(self) -> None:
        """Remove the temporary file unless it became a blob (safe to call more than once)."""
        if self.published:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # still locked: no sweep races this
        with contextlib.suppress(OSError):
            self.handle.close()


class DiskFullError(OSError):
    """The volume has no room for the write (ENOSPC, EDQUOT, or SQLite's "disk is full")."""


def is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    # sqlite3.OperationalError("database or disk is full") carries no errno.
    return type(exc).__name__ == "OperationalError" and "full" in str(exc)


class Spool:
    """Locked temporary files in one directory, reclaimed once no live worker holds them."""

    def __init__(
        self, tmp: Path, *, min_free_bytes: int = 0, sweep_interval: float = DEFAULT_SWEEP_SECONDS
    ) -> None:
        self.tmp = tmp
        self.min_free_bytes = min_free_bytes
        self.sweep_interval = sweep_interval
        self._swept_at: float | None = None

    def prepare(self) -> None:
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.reclaim_orphans()

    def begin(self) -> PendingBlob:
        """A new, locked temporary file."""
        self.sweep_if_due()
        while True:
            fd, name = tempfile.mkstemp(dir=self.tmp, prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX)
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_nlink > 0:
                return PendingBlob(path=Path(name), handle=os.fdopen(fd, "wb"))
            os.close(fd)  # a sweep took it between mkstemp and flock: take another

    def sweep_if_due(self) -> int:
        now = time.monotonic()
        if self._swept_at is not None and now - self._swept_at < self.sweep_interval:
            return 0
        self._swept_at = now
        return self.reclaim_orphans()

    def reclaim_orphans(self) -> int:
        """Remove the temporary files no live worker holds (unlocked); returns how many."""
        reclaimed = 0
        for path in self.tmp.glob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}"):
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            except OSError:
                continue  # gone already
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                path.unlink()  # under our lock: its owner (if any) sees st_nlink == 0
                reclaimed += 1
            except OSError:
                pass  # locked: a live worker is writing it
            finally:
                os.close(fd)
        return reclaimed

    def free_bytes(self) -> int:
        stats = os.statvfs(self.tmp)
        return stats.f_bavail * stats.f_frsize

    def check_writable(self) -> None:
        """Raise OSError naming the reason unless the spool can take writes now: enough free
        space, and a file can be created, synced and removed in the temporary directory."""
        free = self.free_bytes()
        if free < self.min_free_bytes:
            self.reclaim_orphans()
            free = self.free_bytes()
        if free < self.min_free_bytes:
            raise DiskFullError(
                errno.ENOSPC,
                f"storage volume {self.tmp} has {free} bytes free, "
                f"less than MEDIA_MIN_FREE_BYTES={self.min_free_bytes}",
            )
        pending = self.begin()
        try:
            pending.write(b"ready")
            pending.seal()
        finally:
            pending.discard()


class BlobStore:
    """The filesystem backend: blobs and their spool under one root directory (one volume, so
    publishing is a rename)."""

    def __init__(
        self, root: Path, *, min_free_bytes: int = 0, sweep_interval: float = DEFAULT_SWEEP_SECONDS
    ) -> None:
        self.root = root.resolve()
        self.blobs = self.root / "blobs"
        self.spool = Spool(
            self.root / "tmp", min_free_bytes=min_free_bytes, sweep_interval=sweep_interval
        )

    @property
    def tmp(self) -> Path:
        return self.spool.tmp

    def prepare(self) -> None:
        """Create the directory layout and reclaim temporary files of dead workers."""
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.spool.prepare()

    def begin(self) -> PendingBlob:
        return self.spool.begin()

    def reclaim_orphans(self) -> int:
        return self.spool.reclaim_orphans()

    def path_for(self, digest: str) -> Path:
        """The blob path of `digest`; anything but a lowercase SHA-256 hex digest is refused."""
        check_digest(digest)
        path = self.blobs / digest[:2] / digest[2:4] / digest
        # Defence in depth: the digest check already rules out separators and dots.
        if not path.resolve().is_relative_to(self.blobs):
            raise InvalidDigestError(f"blob path escapes the storage root: {digest!r}")
        return path

    def publish(self, pending: PendingBlob, digest: str) -> None:
        """Move a sealed temporary file to its content address (atomic rename, then dir fsync).

        If the blob already exists its bytes are identical by construction, so replacing it is
        harmless and keeps this idempotent.
        """
        target = self.path_for(digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(pending.path, 0o640)
        os.replace(pending.path, target)
        pending.published = True
        pending.handle.close()
        _fsync_dir(target.parent)

    def open(self, digest: str) -> BinaryIO:
        """The blob's bytes (FileNotFoundError when it is missing)."""
        return self.path_for(digest).open("rb")

    def exists(self, digest: str) -> bool:
        return self.path_for(digest).is_file()

    def remove(self, digest: str) -> None:
        path = self.path_for(digest)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            _fsync_dir(path.parent)

    def stored_before(self, cutoff: float) -> Iterator[str]:
        """Digests of the blobs last written before `cutoff` (seconds since the epoch)."""
        for path in self.blobs.glob("??/??/*"):
            if _DIGEST.fullmatch(path.name) and path.stat().st_mtime < cutoff:
                yield path.name

    def check_writable(self) -> None:
        self.spool.check_writable()

    def all_files(self) -> list[Path]:
        """Every regular file under the root (for tests and audits)."""
        return sorted(p for p in self.root.rglob("*") if p.is_file())


def check_digest(digest: str) -> None:
    if not _DIGEST.fullmatch(digest):
        raise InvalidDigestError(f"not a SHA-256 hex digest: {digest!r}")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
