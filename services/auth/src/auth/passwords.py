"""argon2id password hashing (argon2-cffi's defaults follow RFC 9106's recommendations).

Passwords are hashed in Unicode normal form NFC: the same password typed on another keyboard
or system (precomposed `é` or `e` + combining accent) is the same password. A hash made before
that (of the text as typed, the Docker Compose deployment's users) still matches the same text
and is replaced by its NFC hash at the next login.
"""

from __future__ import annotations

import unicodedata

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()  # argon2id
# Verified against when the user does not exist, so a wrong name costs as much time as a wrong
# password and response times do not reveal which usernames exist.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def _normalised(password: str) -> str:
    return unicodedata.normalize("NFC", password)


def hash_password(password: str) -> str:
    return _hasher.hash(_normalised(password))


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when `password` (in NFC, or as typed for an older hash) matches. A missing user
    costs the same verifications as a wrong password, so timing reveals no usernames."""
    nfc = _normalised(password)
    if _matches(password_hash, nfc):
        return bool(password_hash)
    return nfc != password and _matches(password_hash, password) and bool(password_hash)


def _matches(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str, password: str) -> bool:
    """After a match: the hash has outdated parameters, or it is of the text as typed."""
    if _hasher.check_needs_rehash(password_hash):
        return True
    nfc = _normalised(password)
    return nfc != password and not _matches(password_hash, nfc)
