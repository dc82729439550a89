"""Content-addressed blobs on a filesystem volume.

A blob lives at `<root>/blobs/<h[0:2]>/<h[2:4]>/<h>` where `h` is the SHA-256 hex digest of its
bytes, so its path is derived only from a digest this service computed itself. Writes are atomic:
bytes go to a temporary file on the same filesystem (`<root>/tmp`), are fsynced, and the file is
renamed into place; a reader never sees a partial blob.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

_DIGEST = re.compile(r"[0-9a-f]{64}")
STALE_TEMP_SECONDS = 3600


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
        """Flush the bytes to stable storage and return their SHA-256 hex digest."""
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        return self._hash.hexdigest()

    def discard(self) -> None:
        """Remove the temporary file unless it became a blob (safe to call more than once)."""
        if self.published:
            return
        with contextlib.suppress(OSError):
            self.handle.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class BlobStore:
    """Blobs and temporary files under one root directory."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.blobs = self.root / "blobs"
        self.tmp = self.root / "tmp"

    def prepare(self) -> None:
        """Create the directory layout and remove temporary files left by crashed workers."""
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        cutoff = time.time() - STALE_TEMP_SECONDS
        for leftover in self.tmp.iterdir():
            with contextlib.suppress(OSError):
                if leftover.is_file() and leftover.stat().st_mtime < cutoff:
                    leftover.unlink()

    def begin(self) -> PendingBlob:
        """A new temporary file in the same filesystem as the blobs (so rename is atomic)."""
        fd, name = tempfile.mkstemp(dir=self.tmp, prefix="upload-", suffix=".part")
        return PendingBlob(path=Path(name), handle=os.fdopen(fd, "wb"))

    def path_for(self, digest: str) -> Path:
        """The blob path of `digest`; anything but a lowercase SHA-256 hex digest is refused."""
        if not _DIGEST.fullmatch(digest):
            raise InvalidDigestError(f"not a SHA-256 hex digest: {digest!r}")
        path = self.blobs / digest[:2] / digest[2:4] / digest
        # Defence in depth: the digest check already rules out separators and dots.
        if not path.resolve().is_relative_to(self.blobs):
            raise InvalidDigestError(f"blob path escapes the storage root: {digest!r}")
        return path

    def publish(self, pending: PendingBlob, digest: str) -> Path:
        """Move a sealed temporary file to its content address (atomic rename, then dir fsync).

        If the blob already exists its bytes are identical by construction, so replacing it is
        harmless and keeps this idempotent.
        """
        target = self.path_for(digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(pending.path, 0o640)
        os.replace(pending.path, target)
        pending.published = True
        _fsync_dir(target.parent)
        return target

    def exists(self, digest: str) -> bool:
        return self.path_for(digest).is_file()

    def remove(self, digest: str) -> None:
        path = self.path_for(digest)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            _fsync_dir(path.parent)

    def writable(self) -> bool:
        """Whether a file can be created, synced and removed in the temporary directory."""
        try:
            pending = self.begin()
            pending.write(b"ready")
            pending.seal()
            pending.discard()
        except OSError:
            return False
        return True

    def all_files(self) -> list[Path]:
        """Every regular file under the root (for tests and audits)."""
        return sorted(p for p in self.root.rglob("*") if p.is_file())


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
