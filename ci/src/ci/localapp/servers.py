"""Throw-away PostgreSQL and Redis servers on free loopback ports, in temporary directories.

PostgreSQL refuses to run as root, so when the tests run as root the server runs as the
`postgres` user (created by the Debian package) in a data directory that user owns. Both run
in the foreground as our children, bound to our lifetime (harness.lifetime): a test run killed
with SIGKILL takes them with it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ci.localapp.lifetime import bound_to_parent

INSTALL_HINT = "sudo apt-get install -y postgresql redis-server  (or run `make setup`)"


class HarnessError(RuntimeError):
    """A server could not be started; the message says why and how to fix it."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Generous: a loaded two-core CI machine can take many seconds to start a server.
START_TIMEOUT = 120.0


def wait_for_port(port: int, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise HarnessError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f}s")


def postgres_bindir() -> Path:
    """The newest local PostgreSQL server's bin directory."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=_version_key)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("postgres")
    if on_path:
        return Path(on_path).resolve().parent
    raise HarnessError(f"PostgreSQL server binaries not found; install them: {INSTALL_HINT}")


def _version_key(path: str) -> int:
    part = Path(path).parts[-3]
    return int(part) if part.isdigit() else 0


def _postgres_user() -> str | None:
    """The user PostgreSQL runs as: `postgres` when we are root (it refuses root), else us."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError as exc:
        raise HarnessError(
            f"running as root but there is no `postgres` user to run PostgreSQL as; {INSTALL_HINT}"
        ) from exc
    return "postgres"


def _as_postgres_user() -> list[str]:
    """Command prefix that drops root to the `postgres` user; empty when not root."""
    user = _postgres_user()
    return ["runuser", "-u", user, "--"] if user else []


@dataclass
class PostgresServer:
    """A PostgreSQL cluster of our own: initdb, start, stop, and the admin URL."""

    port: int = field(default_factory=free_port)
    user: str = "postgres"
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pg-harness-")))
    process: subprocess.Popen[bytes] | None = None

    @property
    def datadir(self) -> Path:
        return self.workdir / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        cmd = [*_as_postgres_user(), *args]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise HarnessError(f"{' '.join(args[:2])} failed:\n{result.stdout}{result.stderr}")

    def init(self) -> PostgresServer:
        bindir = postgres_bindir()
        self.workdir.chmod(0o755)
        self.datadir.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.datadir, "postgres", "postgres")
        self._run(
            str(bindir / "initdb"), "-D", str(self.datadir), "-U", self.user,
            "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync",
        )  # fmt: skip
        return self

    def start(self) -> None:
        """The postmaster in the foreground, as our child; returns once it accepts queries."""
        log = (self.workdir / "server.log").open("ab")
        command = [
            str(postgres_bindir() / "postgres"), "-D", str(self.datadir), "-p", str(self.port),
            "-k", str(self.datadir), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
            "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
            "-c", "max_connections=300",
        ]  # fmt: skip
        with log:
            self.process = subprocess.Popen(
                bound_to_parent(command, user=_postgres_user()),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        isready = [str(postgres_bindir() / "pg_isready"), "-q", "-h", "127.0.0.1"]
        deadline = time.monotonic() + START_TIMEOUT
        while subprocess.run([*isready, "-p", str(self.port)], check=False).returncode != 0:
            assert self.process is not None
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = (self.workdir / "server.log").read_text(errors="replace")[-2000:]
                raise HarnessError(f"PostgreSQL on port {self.port} did not start:\n{log}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Fast shutdown (SIGINT): clients are disconnected, the data stays for a restart."""
        if self.process is not None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(timeout=START_TIMEOUT)
            self.process = None

    def destroy(self) -> None:
        with contextlib.suppress(HarnessError):
            self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass
class RedisServer:
    """A Redis server of our own, with many logical databases to hand out one per test."""

    port: int = field(default_factory=free_port)
    databases: int = 4096
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="redis-harness-")))
    process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise HarnessError(f"redis-server not found; install it: {INSTALL_HINT}")
        self.process = subprocess.Popen(
            bound_to_parent([
                binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--databases", str(self.databases),
                "--dir", str(self.workdir), "--protected-mode", "no",
            ]),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=START_TIMEOUT)
            self.process = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
