"""Start a chart's run (or the Dockerfile's CMD) from a closure, as the image's user.

The environment is the image's (closure.environment()) with the container's own on top, Secret
references filled from the test's stand-in Secrets, and mount paths pointing at directories of
the run. The working directory is `/`, as in the image (no WORKDIR): nothing of the repository
reaches sys.path through the current directory.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ci.localapp.argv import with_listen_address
from ci.localapp.process import ManagedProcess, StackError, run_to_completion, wait_until_ready
from ci.localapp.servers import free_port

from imagekit.closure import Closure, reachable_by_anyone
from imagekit.workloads import Mount, Run, SecretRef

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Secrets:
    """Stand-ins for the cluster's Secrets: values by (Secret, key), files by Secret."""

    values: Mapping[tuple[str, str], str]
    files: Mapping[str, Mapping[str, bytes]]


@dataclass(frozen=True)
class Launcher:
    closure: Closure
    secrets: Secrets
    work: Path  # readable by the image's user; logs and mounted directories go here
    # What the cluster adds beside the chart's env (the trace collector's address), on top.
    extra_env: Mapping[str, str] = field(default_factory=dict)

    @property
    def user(self) -> str | None:
        """The Dockerfile's USER when we may switch to it (root) and it can reach the files."""
        if os.geteuid() != 0 or not reachable_by_anyone(self.work):
            return None
        return self.closure.recipe.runtime.user

    def process(self, name: str, argv: tuple[str, ...], run: Run | None) -> ManagedProcess:
        env = self.closure.environment()
        if run is not None:
            env.update(self._container_env(run))
        env.update(self.extra_env)
        safe = name.replace("/", "-")
        return ManagedProcess(name, argv, env, Path("/"), self.work / f"{safe}.log", user=self.user)

    def _container_env(self, run: Run) -> dict[str, str]:
        mounts = {m.path: self._mounted(run, m) for m in run.mounts}
        env: dict[str, str] = {}
        for name, value in run.env:
            if isinstance(value, SecretRef):
                secret = self.secrets.values.get((value.secret, value.key))
                if secret is None and value.optional:
                    continue
                if secret is None:
                    raise KeyError(f"{run.name}: env {name}: no stand-in for {value}")
                value = secret
            env[name] = _remounted(value, mounts)
        return env

    def _mounted(self, run: Run, mount: Mount) -> Path:
        host = self.work / "mounts" / run.container / mount.path.strip("/").replace("/", "-")
        host.mkdir(parents=True, exist_ok=True)
        if mount.secret is not None:
            files = self.secrets.files.get(mount.secret)
            if files is None:
                raise KeyError(f"{run.name}: mount {mount.path}: no stand-in Secret {mount.secret}")
            for filename, content in files.items():
                (host / filename).write_bytes(content)
                (host / filename).chmod(0o644)
        elif self.user is not None:
            uid, _, gid = self.user.partition(":")
            os.chown(host, int(uid), int(gid or uid))
        for directory in [host, *host.parents]:
            if directory == self.work:
                break
            directory.chmod(0o755)
        return host


def _remounted(value: str, mounts: Mapping[str, Path]) -> str:
    """A value naming a mounted path (AUTH_SIGNING_KEYS_DIR=/var/run/...) points at our copy."""
    for path, host in mounts.items():
        pure = PurePosixPath(value)
        if value.startswith("/") and (
            pure == PurePosixPath(path) or PurePosixPath(path) in pure.parents
        ):
            return str(host / pure.relative_to(path))
    return value


def run_job(launcher: Launcher, run: Run, timeout: float) -> None:
    run_to_completion(launcher.process(run.name, run.argv, run), timeout)


def start_server(
    launcher: Launcher, name: str, argv: tuple[str, ...], run: Run, timeout: float
) -> ManagedProcess:
    """`argv` rebound to a free loopback port; returned once `run.http_probe` answers 200."""
    port = free_port()
    process = launcher.process(name, tuple(with_listen_address(argv, HOST, port)), run)
    process.start()
    wait_until_ready({name: (process, f"http://{HOST}:{port}{run.http_probe}")}, timeout)
    return process


def start_worker(launcher: Launcher, run: Run, timeout: float) -> ManagedProcess:
    """The worker, returned once every exec probe of its container passes while it runs."""
    process = launcher.process(run.name, run.argv, run)
    process.start()
    deadline = time.monotonic() + timeout
    for index, probe in enumerate(run.exec_probes):
        while True:
            if not process.running:
                raise process.failure("exited while its probes were tried")
            checker = launcher.process(f"{run.name}-probe{index}", probe, run)
            try:
                run_to_completion(checker, timeout=max(1.0, deadline - time.monotonic()))
                break
            except StackError as exc:
                if time.monotonic() > deadline:
                    raise process.failure(f"probe {' '.join(probe)} never passed: {exc}") from exc
            time.sleep(0.5)
    if not process.running:
        raise process.failure("exited once its probes passed")
    return process
