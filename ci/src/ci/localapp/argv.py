"""Point a service's production `run` command at a loopback address of our choosing.

service.yaml's `run` is the container command, bound to 0.0.0.0 on the container port. Locally
every service needs its own free port, so the host/port flags of the server are replaced. Only
the two production servers of the conventions are understood; anything else is an error rather
than a silent guess.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePath
from typing import Literal

Server = Literal["uvicorn", "gunicorn"]

# Flags that choose where the server listens; each takes one value.
_LISTEN_FLAGS: dict[Server, tuple[str, ...]] = {
    "uvicorn": ("--host", "--port", "--uds", "--fd"),
    "gunicorn": ("--bind", "-b"),
}


class CommandError(ValueError):
    """A `run` command whose listen address cannot be rewritten."""


def server_of(argv: Sequence[str]) -> Server:
    """Which server a command starts: `uvicorn ...`, `gunicorn ...` or `python -m <server> ...`."""
    if not argv:
        raise CommandError("empty command")
    program = PurePath(argv[0]).name
    if program.startswith("python") and len(argv) > 2 and argv[1] == "-m":
        program = argv[2]
    if program in ("uvicorn", "gunicorn"):
        return program  # type: ignore[return-value]  # narrowed by the membership test
    raise CommandError(
        f"cannot choose the port of {list(argv)!r}: only uvicorn and gunicorn commands are known"
    )


def with_listen_address(argv: Sequence[str], host: str, port: int) -> list[str]:
    """`argv` with its listen flags removed and `host`:`port` appended in the server's syntax."""
    server = server_of(argv)
    kept = _without_flags(argv, _LISTEN_FLAGS[server])
    if server == "uvicorn":
        return [*kept, "--host", host, "--port", str(port)]
    return [*kept, "--bind", f"{host}:{port}"]


def _without_flags(argv: Sequence[str], flags: tuple[str, ...]) -> list[str]:
    kept: list[str] = []
    skip_value = False
    for token in argv:
        if skip_value:
            skip_value = False
            continue
        if token in flags:
            skip_value = True
            continue
        if any(token.startswith(f"{flag}=") for flag in flags if flag.startswith("--")):
            continue
        if "-b" in flags and token.startswith("-b") and not token.startswith("--"):
            continue  # gunicorn's attached short form: -b0.0.0.0:8000
        kept.append(token)
    if skip_value:
        raise CommandError(f"{list(argv)!r} ends with a listen flag that has no value")
    return kept
