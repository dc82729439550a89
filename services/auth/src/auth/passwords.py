"""argon2id password hashing (argon2-cffi's defaults follow RFC 9106's recommendations).

Passwords are hashed in Unicode normal form NFC: the same password typed on another keyboard
or system (precomposed `é` or `e` + combining accent) is the same password.
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
    return _matches(password_hash, _normalised(password)) and bool(password_hash)


def _matches(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)
