"""Passwords that are refused at registration: common and breached ones (NIST SP 800-63B,
5.1.1.2: compare against a list of commonly used, expected or compromised values).

The list is zxcvbn's ranked list of 30,000 passwords seen most often in breaches; the
comparison ignores case, and a password equal to the user name is refused too. No
composition rules (digits, symbols): NIST advises against them.
"""

from __future__ import annotations

from zxcvbn.frequency_lists import FREQUENCY_LISTS

COMMON_PASSWORDS = frozenset(FREQUENCY_LISTS["passwords"])
RULE = "not a common or breached password such as 'password' or '12345678', nor the username"


def password_problem(password: str, username: str) -> str | None:
    """Why `password` is refused, or None."""
    folded = password.casefold()
    if folded == username.casefold():
        return "the password must not be the username"
    if folded in COMMON_PASSWORDS:
        return (
            "this password is on a list of common and breached passwords; choose another "
            "(a few unrelated words make a strong one)"
        )
    return None
