"""Child processes that die with whoever started them, even when that one is SIGKILLed.

A CI timeout kills the test runner (or the local stack) with SIGKILL: no `finally` runs, so
every server it started would be left running. Each child is therefore started through
util-linux's `setpriv --pdeathsig KILL`, which asks the kernel (PR_SET_PDEATHSIG) to kill it
when its parent dies, and sets that after dropping to another user (a change of user clears
it). The kernel ties it to the *thread* that started the child: start servers from the main
thread or from a thread that lives as long as they do.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence

INSTALL_HINT = "setpriv is part of util-linux (Debian/Ubuntu: apt-get install util-linux)"


class LifetimeError(RuntimeError):
    """The tool that ties a child's lifetime to its parent is missing."""


def bound_to_parent(argv: Sequence[str], *, user: str | None = None) -> list[str]:
    """`argv` wrapped so that it is killed when its parent dies (run as `user` when given).

    `user` is a user name (its own group and supplementary groups), or `UID:GID` in numbers,
    as a Dockerfile's USER names an account the host may not have (no supplementary groups).
    """
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise LifetimeError(f"setpriv not found; {INSTALL_HINT}")
    return [setpriv, *_as_user(user), "--pdeathsig", "KILL", "--", *argv]


def _as_user(user: str | None) -> list[str]:
    if not user:
        return []
    uid, colon, gid = user.partition(":")
    if colon and uid.isdigit() and gid.isdigit():
        return ["--reuid", uid, "--regid", gid, "--clear-groups"]
    return ["--reuid", user, "--regid", user, "--init-groups"]
