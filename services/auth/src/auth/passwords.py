"""argon2id password hashing (argon2-cffi's defaults follow RFC 9106's recommendations).

Passwords are hashed in Unicode normal form NFC: the same password typed on another keyboard
or system (precomposed `é` or `e` + combining accent) is the same password. A hash made before
that (of the text as typed, the Docker Compose deployment's users; `users.password_nfc` false)
still matches the same text and is replaced by its NFC hash at the next login. Each attempt
costs one argon2 verification (64 MiB): the stored hash says which form to verify.
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


def verify_password(password_hash: str | None, password: str, *, nfc_hash: bool = True) -> bool:
    """True when `password` matches: its NFC form for an NFC hash, else the text as typed. One
    verification whatever the input; a missing user costs the same, so timing reveals no
    usernames and no input costs twice."""
    candidate = _normalised(password) if nfc_hash else password
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, candidate) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str, *, nfc_hash: bool) -> bool:
    """After a match: the hash is of the text as typed, or has outdated parameters."""
    return not nfc_hash or _hasher.check_needs_rehash(password_hash)
