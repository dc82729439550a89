"""Content type from the bytes themselves; the client's claimed type is never trusted."""

from __future__ import annotations

import puremagic

# Enough for every signature in puremagic's table that matters here (images, PDF).
SNIFF_BYTES = 8192
_TEXT_CONTROL_ALLOWED = frozenset(b"\t\n\r\f")
# puremagic names some text by a signature of its own; the bytes decide whether it is text.
_TEXT_ALIASES = frozenset({"text/ascii"})


def sniff_content_type(head: bytes) -> str | None:
    """The MIME type of a file starting with `head`, or None when it cannot be identified.

    Binary formats come from puremagic's magic-number table (best match first). Bytes that match
    no signature but are valid UTF-8 without control characters count as `text/plain`.
    """
    if not head:
        return None
    try:
        matches = puremagic.magic_string(head)
    except puremagic.PureError:
        matches = []
    for match in matches:
        if match.mime_type and match.mime_type not in _TEXT_ALIASES:
            return str(match.mime_type)
    return "text/plain" if _looks_like_text(head) else None


def _looks_like_text(head: bytes) -> bool:
    try:
        # A multi-byte character may be cut at the end of the sample.
        text = head.decode("utf-8") if len(head) < SNIFF_BYTES else _decode_prefix(head)
    except UnicodeDecodeError:
        return False
    return all(ord(c) >= 0x20 or ord(c) in _TEXT_CONTROL_ALLOWED for c in text if ord(c) < 0x80)


def _decode_prefix(head: bytes) -> str:
    for cut in range(4):
        try:
            return head[: len(head) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
    raise UnicodeDecodeError("utf-8", head, 0, len(head), "not UTF-8 text")
