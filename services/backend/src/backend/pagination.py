"""Opaque cursors for keyset pagination over a row's integer `seq`."""

from __future__ import annotations

import base64
import binascii
import json

# `seq` is a 64-bit signed integer in the database: a larger `after` could only be forged.
MAX_SEQ = 2**63 - 1


class InvalidCursorError(ValueError):
    pass


def encode_cursor(seq: int) -> str:
    raw = json.dumps({"after": seq}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
        seq = value["after"]
    except (binascii.Error, ValueError, TypeError, KeyError) as exc:
        raise InvalidCursorError("cursor is not one this API returned") from exc
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq <= MAX_SEQ:
        raise InvalidCursorError("cursor is not one this API returned")
    return seq
