"""A thin, typed wrapper over the `git` command line for the delivery code.

Subprocess `git` rather than a library: the delivery code needs fetch, rebase, revert, annotated
tags and push with exact exit semantics, and the git CLI is the reference implementation of all of
them. Every call has a timeout and runs with a fixed locale so messages can be parsed.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

GIT_TIMEOUT_SECONDS = 120.0


class GitError(RuntimeError):
    """A git command failed; the message carries the command and git's own words."""

    def __init__(self, args: Sequence[str], returncode: int, stdout: str, stderr: str) -> None:
        self.args_ = list(args)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        detail = (stderr.strip() or stdout.strip() or "no output").splitlines()
        super().__init__(f"git {' '.join(args)} failed ({returncode}): {' / '.join(detail[-5:])}")


def token_environment(host: str = "github.com", variable: str = "GIT_TOKEN") -> dict[str, str]:
    """Environment that makes git answer `host`'s HTTPS authentication with the token held in
    the environment variable `variable`, read by a credential helper only when git asks.

    The token stays in that one variable (a dagger.Secret in the engine, which scrubs its
    value from logs): never in git's configuration, an argument, the remote URL or another
    encoding (a base64 `Authorization` header would not be recognised as the secret). An empty
    helper first clears any configured helper, so none stores it.
    """
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", variable):
        raise ValueError(f"token variable {variable!r}: not an environment variable name")
    key = f"credential.https://{host}.helper"
    helper = (
        f'!f() {{ test "$1" = get || exit 0; echo username=x-access-token; '
        f'echo "password=${{{variable}}}"; }}; f'
    )
    return {
        "GIT_CONFIG_COUNT": "2",
        "GIT_CONFIG_KEY_0": key,
        "GIT_CONFIG_VALUE_0": "",
        "GIT_CONFIG_KEY_1": key,
        "GIT_CONFIG_VALUE_1": helper,
    }


def _text(raw: bytes) -> str:
    """git's output as text: UTF-8, with anything else replaced (messages, never file content)."""
    return raw.decode(errors="replace")


@dataclass(frozen=True)
class Git:
    """A git work tree at `workdir`."""

    workdir: Path
    extra_env: Mapping[str, str] = field(default_factory=dict)

    def run(self, *args: str, check: bool = True, stdin: str | None = None) -> str:
        """Run `git <args>` in the work tree and return stdout (stripped of the final newline).

        Text is UTF-8 whatever the host's locale (git's own encoding for paths and messages).
        """
        out = self.run_bytes(*args, check=check, stdin=None if stdin is None else stdin.encode())
        return _text(out).rstrip("\n")

    def run_bytes(self, *args: str, check: bool = True, stdin: bytes | None = None) -> bytes:
        """`run` for byte-counted protocols (`cat-file --batch`, `fast-import`): raw stdout."""
        env = {**os.environ, "LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0", **self.extra_env}
        # Never let an editor open (rebase, revert, merge) in a non-interactive pipeline.
        env["GIT_EDITOR"] = "true"
        proc = subprocess.run(  # noqa: S603 - fixed executable, arguments are a list
            ["git", *args],  # noqa: S607 - git is looked up on PATH on purpose
            cwd=self.workdir,
            env=env,
            input=stdin,
            capture_output=True,
            timeout=GIT_TIMEOUT_SECONDS,
            check=False,
        )
        if check and proc.returncode != 0:
            raise GitError(args, proc.returncode, _text(proc.stdout), _text(proc.stderr))
        return proc.stdout

    def blobs(self, specs: Sequence[str]) -> dict[str, str | None]:
        """The text of each `<revision>:<path>` (None when missing), in one `cat-file --batch`."""
        out = self.run_bytes("cat-file", "--batch", stdin="".join(f"{s}\n" for s in specs).encode())
        found: dict[str, str | None] = {}
        at = 0
        for spec in specs:
            header_end = out.index(b"\n", at)
            header = out[at:header_end].split()  # <sha> blob <size>, or <spec> missing
            if len(header) != 3 or header[1] != b"blob":
                found[spec], at = None, header_end + 1
                continue
            size = int(header[2])
            found[spec] = out[header_end + 1 : header_end + 1 + size].decode()  # strict: YAML
            at = header_end + 1 + size + 1  # the content is followed by a newline
        return found

    def succeeds(self, *args: str) -> bool:
        """True when `git <args>` exits 0."""
        try:
            self.run(*args)
        except GitError:
            return False
        return True

    def head(self) -> str:
        return self.run("rev-parse", "HEAD")

    def is_clean(self) -> bool:
        return self.run("status", "--porcelain", "--untracked-files=all") == ""

    def git_dir(self) -> Path:
        """The repository's git directory (read without a subprocess in a plain clone)."""
        dot_git = self.workdir / ".git"
        if dot_git.is_dir():
            return dot_git
        return Path(self.run("rev-parse", "--absolute-git-dir"))

    def current_branch(self) -> str | None:
        """The checked-out branch, None when HEAD is detached (HEAD read without a subprocess)."""
        head = (self.git_dir() / "HEAD").read_text(encoding="utf-8").strip()
        ref = head.removeprefix("ref: ")
        return ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else None

    def in_progress_operation(self) -> str | None:
        """The name of a rebase/merge/revert/cherry-pick left in progress, if any."""
        git_dir = self.git_dir()
        markers = {
            "rebase-merge": "rebase",
            "rebase-apply": "rebase",
            "MERGE_HEAD": "merge",
            "REVERT_HEAD": "revert",
            "CHERRY_PICK_HEAD": "cherry-pick",
        }
        for marker, name in markers.items():
            if (git_dir / marker).exists():
                return name
        return None
