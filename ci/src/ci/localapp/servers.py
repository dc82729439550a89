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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

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
    """A PostgreSQL cluster of our own: initdb, start, stop, and the admin URL.

    Tests get a throw-away cluster (trust, no fsync). The local app passes its data directory
    as `workdir`, a `password` (scram-sha-256 for every connection) and `durable=True`.
    """

    port: int = field(default_factory=free_port)
    user: str = "postgres"
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pg-harness-")))
    password: str | None = None
    durable: bool = False
    process: subprocess.Popen[bytes] | None = None

    @property
    def datadir(self) -> Path:
        return self.workdir / "data"

    @property
    def initialized(self) -> bool:
        return (self.datadir / "PG_VERSION").is_file()

    def url(self, database: str = "postgres") -> str:
        secret = f":{quote(self.password, safe='')}" if self.password else ""
        return f"postgresql://{self.user}{secret}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        cmd = [*_as_postgres_user(), *args]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise HarnessError(f"{' '.join(args[:2])} failed:\n{result.stdout}{result.stderr}")

    def init(self) -> PostgresServer:
        bindir = postgres_bindir()
        self.workdir.chmod(0o755)
        self._check_reachable()
        self.datadir.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.datadir, "postgres", "postgres")
        try:
            with self._password_file() as pwfile:
                auth = ["--auth=trust"]
                if pwfile is not None:
                    auth = ["--auth=scram-sha-256", f"--pwfile={pwfile}"]
                self._run(
                    str(bindir / "initdb"), "-D", str(self.datadir), "-U", self.user, *auth,
                    "--encoding=UTF8", "--locale=C.UTF-8",
                    *([] if self.durable else ["--no-sync"]),
                )  # fmt: skip
        except BaseException:
            shutil.rmtree(self.datadir, ignore_errors=True)  # nothing half-made stays
            raise
        return self

    def init_replica_of(self, primary: PostgresServer) -> PostgresServer:
        """This server's data directory as a base backup of the running `primary`, set up to
        stream its WAL (pg_basebackup -R: standby.signal and primary_conninfo), asynchronously
        as CloudNativePG's replicas do by default. Start it with `start()`."""
        bindir = postgres_bindir()
        self.workdir.chmod(0o755)
        self._check_reachable()
        self.datadir.mkdir(mode=0o700)
        if os.geteuid() == 0:
            shutil.chown(self.datadir, "postgres", "postgres")
        try:
            self._run(
                str(bindir / "pg_basebackup"), "-D", str(self.datadir), "-h", "127.0.0.1",
                "-p", str(primary.port), "-U", primary.user, "-R", "-X", "stream",
                "--checkpoint=fast", *([] if self.durable else ["--no-sync"]),
            )  # fmt: skip
        except BaseException:
            shutil.rmtree(self.datadir, ignore_errors=True)  # nothing half-made stays
            raise
        return self

    def promote(self) -> None:
        """A replica becomes a primary (pg_ctl promote, waiting until it accepts writes)."""
        pg_ctl = str(postgres_bindir() / "pg_ctl")
        self._run(pg_ctl, "promote", "-w", "-t", str(int(START_TIMEOUT)), "-D", str(self.datadir))

    def kill(self) -> None:
        """kill -9 of the postmaster and every backend, as when its pod dies: no shutdown."""
        if self.process is None:
            return
        backends = _children(self.process.pid)
        self.process.kill()
        for pid in backends:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(timeout=START_TIMEOUT)
        self.process = None
        _wait_until_dead(backends)

    def _check_reachable(self) -> None:
        """As root the server runs as `postgres`: every parent folder must let it through."""
        if os.geteuid() != 0:
            return
        probe = [*_as_postgres_user(), "test", "-x", str(self.workdir)]
        if subprocess.run(probe, check=False).returncode != 0:
            raise HarnessError(
                f"{self.workdir}: the postgres user cannot reach this folder (a parent folder "
                "is private); choose a data directory under a folder others may enter"
            )

    @contextlib.contextmanager
    def _password_file(self) -> Iterator[Path | None]:
        """The password for initdb in a file only the server's user can read, deleted after:
        never in an argument."""
        if self.password is None:
            yield None
            return
        path = self.workdir / ".initdb-password"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(self.password + "\n")
        if os.geteuid() == 0:
            shutil.chown(path, "postgres", "postgres")
        try:
            yield path
        finally:
            path.unlink(missing_ok=True)

    def start(self) -> None:
        """The postmaster in the foreground, as our child; returns once it accepts queries."""
        log = (self.workdir / "server.log").open("ab")
        command = [
            str(postgres_bindir() / "postgres"), "-D", str(self.datadir), "-p", str(self.port),
            "-k", str(self.datadir), "-c", "listen_addresses=127.0.0.1",
            "-c", "max_connections=300",
        ]  # fmt: skip
        if not self.durable:  # test data: speed over crash safety
            command += ["-c", "fsync=off", "-c", "synchronous_commit=off"]
            command += ["-c", "full_page_writes=off"]
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


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:  # fields: state, ppid, ...
                found.append(int(stat.parent.name))
    return found


def _wait_until_dead(pids: list[int], timeout: float = START_TIMEOUT) -> None:
    """A SIGKILLed process lingers a moment; gone means no /proc entry or a zombie (Z)."""
    deadline = time.monotonic() + timeout
    while alive := [pid for pid in pids if _state(pid) not in (None, "Z")]:
        if time.monotonic() > deadline:
            raise HarnessError(f"processes {alive} outlived a SIGKILL by {timeout:.0f}s")
        time.sleep(0.01)


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


@dataclass
class RedisServer:
    """A Redis server of our own, with many logical databases to hand out one per test.

    The local app passes its data directory as `workdir`, a `password` and `durable=True`
    (an append-only file and snapshots there, so the data outlives a restart).
    """

    port: int = field(default_factory=free_port)
    databases: int = 4096
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="redis-harness-")))
    password: str | None = None
    durable: bool = False
    # More redis.conf lines (a replica's `replicaof`, tests/harness/sentinel.py).
    extra_settings: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        secret = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{secret}127.0.0.1:{self.port}/{db}"

    def _config_file(self) -> Path:
        """The settings as a file of our own (0600): a password never sits in an argument."""
        persistence = ["appendonly yes", "appendfsync everysec", "save 60 1"]
        settings = [
            f"port {self.port}", "bind 127.0.0.1", f"databases {self.databases}",
            f'dir "{self.workdir}"', "protected-mode no",
            *(persistence if self.durable else ['save ""', "appendonly no"]),
            *([f'requirepass "{self.password}"'] if self.password else []),
            *self.extra_settings,
        ]  # fmt: skip
        path = self.workdir / "redis.conf"
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text("\n".join(settings) + "\n")
        return path

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise HarnessError(f"redis-server not found; install it: {INSTALL_HINT}")
        self.workdir.mkdir(parents=True, exist_ok=True)
        with (self.workdir / "server.log").open("ab") as log:
            self.process = subprocess.Popen(
                bound_to_parent([binary, str(self._config_file())]),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=START_TIMEOUT)
            self.process = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
