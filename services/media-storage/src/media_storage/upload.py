"""Streaming multipart upload: bytes go straight from the socket to a temporary blob file.

The request body is fed chunk by chunk into Werkzeug's sans-IO multipart decoder, so memory use
is bounded by the chunk size. The size limit is enforced as bytes arrive (never after reading
everything), and the content type is sniffed from the first bytes before the rest is accepted.
Any refusal discards the temporary file, so nothing is left behind.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import IO

from werkzeug.sansio.multipart import Data, Epilogue, File, MultipartDecoder, NeedData

from media_storage.blobs import PendingBlob
from media_storage.sniff import SNIFF_BYTES, sniff_content_type
from media_storage.storage import ObjectStore

FIELD_NAME = "file"
CHUNK_BYTES = 64 * 1024
# Room for boundaries, part headers and small extra fields on top of the file itself.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
MAX_NAME_CHARS = 255


class UploadRejectedError(Exception):
    """The upload is refused; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class UploadPolicy:
    max_bytes: int
    allowed_types: frozenset[str]


@dataclass
class ReceivedFile:
    pending: PendingBlob
    sha256: str
    name: str
    content_type: str

    @property
    def size(self) -> int:
        return self.pending.size


class _FilePart:
    """The one `file` part: written to a temporary blob, size-limited, type-checked early."""

    def __init__(self, store: ObjectStore, policy: UploadPolicy, filename: str) -> None:
        self.policy = policy
        self.name = display_name(filename)
        self.pending = store.begin()
        self.head = bytearray()
        self.content_type: str | None = None

    def feed(self, data: bytes) -> None:
        if self.pending.size + len(data) > self.policy.max_bytes:
            raise UploadRejectedError(
                413, f"file exceeds the upload limit of {self.policy.max_bytes} bytes"
            )
        self.pending.write(data)
        if self.content_type is None and len(self.head) < SNIFF_BYTES:
            self.head.extend(data[: SNIFF_BYTES - len(self.head)])
            if len(self.head) >= SNIFF_BYTES:
                self._check_type()

    def finish(self) -> ReceivedFile:
        if self.pending.size == 0:
            raise UploadRejectedError(400, "multipart field 'file' is empty")
        if self.content_type is None:
            self._check_type()
        assert self.content_type is not None
        digest = self.pending.seal()
        return ReceivedFile(self.pending, digest, self.name, self.content_type)

    def _check_type(self) -> None:
        sniffed = sniff_content_type(bytes(self.head))
        if sniffed is None or sniffed not in self.policy.allowed_types:
            allowed = ", ".join(sorted(self.policy.allowed_types))
            raise UploadRejectedError(
                415, f"content type {sniffed or 'unknown'} is not allowed (allowed: {allowed})"
            )
        self.content_type = sniffed


def receive_upload(
    body: IO[bytes], boundary: str, store: ObjectStore, policy: UploadPolicy
) -> ReceivedFile:
    """Read a multipart body with exactly one `file` part into a sealed temporary blob."""
    decoder = MultipartDecoder(boundary.encode("latin-1"))
    part: _FilePart | None = None
    writing = False
    budget = policy.max_bytes + MULTIPART_OVERHEAD_BYTES
    try:
        finished = False
        while not finished:
            chunk = body.read(CHUNK_BYTES)
            budget -= len(chunk)
            if budget < 0:
                raise UploadRejectedError(
                    413, f"file exceeds the upload limit of {policy.max_bytes} bytes"
                )
            decoder.receive_data(chunk or None)
            while True:
                event = decoder.next_event()
                if isinstance(event, NeedData):
                    break
                if isinstance(event, Epilogue):
                    finished = True
                    break
                if isinstance(event, File) and event.name == FIELD_NAME:
                    if part is not None:
                        raise UploadRejectedError(400, "send exactly one multipart field 'file'")
                    part = _FilePart(store, policy, event.filename)
                    writing = True
                elif isinstance(event, Data):
                    if writing and part is not None:
                        part.feed(event.data)
                    writing = writing and event.more_data
            if not chunk and not finished:
                raise UploadRejectedError(400, "multipart body ended early")
        if part is None:
            raise UploadRejectedError(400, "multipart field 'file' is required")
        return part.finish()
    except ValueError as exc:  # malformed multipart (the decoder's only error type)
        if part is not None:
            part.pending.discard()
        raise UploadRejectedError(400, f"malformed multipart body: {exc}") from exc
    except BaseException:
        if part is not None:
            part.pending.discard()
        raise


def display_name(filename: str) -> str:
    """A file name for display only: last path component, no control characters, bounded.

    The name is metadata; it never becomes a filesystem path (blobs are named by digest).
    """
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(c for c in base if unicodedata.category(c)[0] != "C").strip()
    if cleaned in {"", ".", ".."}:
        cleaned = "file"
    return cleaned[:MAX_NAME_CHARS]
