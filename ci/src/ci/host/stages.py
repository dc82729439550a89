"""The check stages as host processes: the recipes' Steps, run where the engine would run them.

Artefacts per service under the output directory (`test-output/` by default), as the engine's
`test` export writes them: `junit.xml`, `output.txt`, `exit-code`; plus `lint.log`, `build.log`
and `scan/` (hadolint and Trivy reports, `verdict.json`).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ci.core import hostcheck, recipes, scanpolicy
from ci.core.catalog import Catalog, Service
from ci.core.report import StageResult
from ci.host.processes import run_command
from ci.localapp.servers import PostgresServer, RedisServer

COMMAND_TIMEOUT_SECONDS = 3600.0
DETAIL_LINES = 60
# Variables the harness reads: a job gets them only when its service needs the server.
BACKING_VARIABLES = ("TEST_DATABASE_URL", "TEST_REDIS_URL")


def tail(path: Path, lines: int = DETAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return f"(no output at {path})"
    return "\n".join([f"(last {lines} lines of {path})", *text[-lines:]])


@dataclass
class BackingServers:
    """One PostgreSQL for the run (every test creates databases of its own in it) and one Redis
    per test job: the harness hands out logical Redis databases from 1 up in every session, so
    two sessions on one server would flush each other's data."""

    postgres: PostgresServer | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def database_url(self) -> str:
        with self.lock:
            if self.postgres is None:
                server = PostgresServer().init()
                self.postgres = server
                server.start()
            return self.postgres.url()

    @contextmanager
    def redis(self) -> Iterator[str]:
        """A Redis of the calling job's own (its worker thread outlives it: see harness)."""
        server = RedisServer(databases=512)
        try:
            server.start()
            yield server.url()
        finally:
            server.destroy()

    def stop(self) -> None:
        if self.postgres is not None:
            self.postgres.destroy()
            self.postgres = None


@dataclass
class HostStages:
    root: Path
    output: Path
    tools: hostcheck.Tools
    severity: str = "HIGH"
    version: str = "dev"
    revision: str = "unknown"
    servers: BackingServers = field(default_factory=BackingServers)
    # The tools of the environment running the check (ruff, mypy, pytest, hadolint, ...).
    bin_dir: Path = field(default_factory=lambda: Path(sys.executable).parent)

    def folder(self, name: str) -> Path:
        folder = self.output / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def environment(self, extra: Mapping[str, str] = {}) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in BACKING_VARIABLES}
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', os.defpath)}"
        return {**env, **extra}

    def run_steps(self, steps: Sequence[recipes.Step], log: Path, env: Mapping[str, str]) -> int:
        """The steps one after another (like a chain of with_exec); the first failure stops."""
        for step in steps:
            cwd = self.root / step.workdir
            if step.workdir != ".":
                with log.open("a") as out:
                    out.write(f"# in {step.workdir}\n")
            code = run_command(
                step.args, cwd, self.environment({**env, **step.env}), log, COMMAND_TIMEOUT_SECONDS
            )
            if code != 0:
                return code
        return 0

    # --- stages -------------------------------------------------------------------------

    def lint(self, service: Service) -> StageResult:
        log = self.folder(service.name) / "lint.log"
        log.unlink(missing_ok=True)
        # A mypy cache per service: their tests share module names (conftest) and run at once.
        cache = {"MYPY_CACHE_DIR": str(self.root / ".mypy_cache" / f"check-{service.name}")}
        code = self.run_steps(recipes.lint_steps(service), log, cache)
        return StageResult(
            service=service.name, stage="lint", ok=code == 0, detail="" if not code else tail(log)
        )

    def test(self, service: Service) -> StageResult:
        folder = self.folder(service.name)
        step = recipes.step_for_tests(service, str((folder / recipes.JUNIT_FILE).resolve()))
        with self.backing(service) as env:
            return self.run_test(service.name, folder, [step], env)

    def repo_tests(self, catalog: Catalog) -> StageResult:
        """The repository suite; like in the engine it starts its own servers (harness)."""
        folder = self.folder(recipes.REPO_SUITE)
        junit = str((folder / recipes.JUNIT_FILE).resolve())
        return self.run_test(
            recipes.REPO_SUITE, folder, [recipes.step_for_repo_tests(catalog, junit)], {}
        )

    def generated_check(self) -> StageResult:
        """`generated-up-to-date`: ci.generate --check over the repository."""
        log = self.folder(recipes.REPO_SUITE) / "generated.log"
        log.unlink(missing_ok=True)
        code = self.run_steps([recipes.GENERATED_CHECK], log, {})
        detail = "" if not code else tail(log)
        return StageResult(
            service=recipes.REPO_SUITE, stage="generated", ok=code == 0, detail=detail
        )

    @contextmanager
    def backing(self, service: Service) -> Iterator[dict[str, str]]:
        if "redis" in service.needs:
            with self.servers.redis() as redis_url:
                yield recipes.env_for_tests(service, self.database_url(service), redis_url)
        else:
            yield recipes.env_for_tests(service, self.database_url(service))

    def database_url(self, service: Service) -> str:
        return self.servers.database_url() if "postgres" in service.needs else ""

    def run_test(
        self, name: str, folder: Path, steps: list[recipes.Step], env: Mapping[str, str]
    ) -> StageResult:
        output = folder / "output.txt"
        output.unlink(missing_ok=True)
        (folder / recipes.JUNIT_FILE).unlink(missing_ok=True)
        code = self.run_steps(steps, output, env)
        (folder / "exit-code").write_text(f"{code}\n")
        return StageResult(
            service=name, stage="test", ok=code == 0, detail="" if not code else tail(output)
        )

    def image_tag(self, service: Service) -> str:
        return f"ci-check/{service.name}:{self.version}"

    def tools_now(self) -> hostcheck.Tools:
        """The tools, with the Docker daemon asked again: it may have gone since the start."""
        if self.tools.docker:
            return self.tools
        return self.tools.model_copy(update={"docker": docker_unavailable()})

    def build(self, service: Service) -> StageResult:
        docker = self.tools_now().docker
        if docker:
            return StageResult(service=service.name, stage="build", ok=True, not_run=docker)
        log = self.folder(service.name) / "build.log"
        log.unlink(missing_ok=True)
        with tempfile.TemporaryDirectory(prefix="ci-check-context-") as context:
            copy_context(self.root, recipes.build_context(service), Path(context))
            step = recipes.docker_build_step(
                service, context, self.image_tag(service), self.version, self.revision, ""
            )
            code = self.run_steps([step], log, {})
        detail = "" if not code else hostcheck.without_builder_banner(tail(log))
        return StageResult(service=service.name, stage="build", ok=code == 0, detail=detail)

    def scan(self, service: Service, built: bool) -> StageResult:
        """hadolint where installed, Trivy over the built image where a daemon and Trivy exist;
        the policy verdict over what ran, and what did not run named in the row."""
        reports = self.folder(service.name) / "scan"
        reports.mkdir(exist_ok=True)
        log = reports / "scan.log"
        log.unlink(missing_ok=True)
        problems: list[str] = []
        tools = self.tools_now() if built else self.tools
        skipped = hostcheck.scan_not_run(tools, built)
        if tools.hadolint:
            problems += self.hadolint(service, reports, log)
        if not hostcheck.image_scan_not_run(tools, built):
            problems += self.trivy(service, reports, log)
        if problems:
            return StageResult(
                service=service.name, stage="scan", ok=False, detail="\n".join(problems)
            )
        return StageResult(service=service.name, stage="scan", ok=True, not_run=skipped)

    def hadolint(self, service: Service, reports: Path, log: Path) -> list[str]:
        dockerfile = str(self.root / recipes.dockerfile(service))
        for output_format in ("json", "sarif"):
            step = recipes.hadolint_step(dockerfile, output_format)
            done = subprocess.run(
                step.args,
                env=self.environment(),
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT_SECONDS,
                check=False,
            )
            (reports / f"hadolint.{output_format}").write_text(done.stdout)
            with log.open("a") as out:
                out.write(f"$ {' '.join(step.args)}\n{done.stderr}")
            if done.returncode != 0:
                return [f"hadolint exited {done.returncode}: {done.stderr.strip()[-500:]}"]
        errors = scanpolicy.hadolint_errors((reports / "hadolint.json").read_text())
        return [f"hadolint error {error}" for error in errors]

    def trivy(self, service: Service, reports: Path, log: Path) -> list[str]:
        tarball = reports / "image.tar"
        save = recipes.Step(
            name="docker save",
            args=["docker", "save", "--output", str(tarball), self.image_tag(service)],
        )
        steps = [save, *recipes.trivy_steps(str(tarball), str(reports))]
        code = self.run_steps(steps, log, {})
        tarball.unlink(missing_ok=True)
        if code != 0:
            return [f"trivy failed (exit {code})", tail(log)]
        ignore_file = self.root / hostcheck.SCAN_IGNORE_FILE
        ignores = ignore_file.read_text() if ignore_file.is_file() else ""
        today = dt.datetime.now(tz=dt.UTC).date()
        try:
            verdict = scanpolicy.evaluate(
                (reports / recipes.TRIVY_REPORT).read_text(), self.severity, ignores, today
            )
        except scanpolicy.PolicyError as exc:
            return [str(exc)]
        (reports / "verdict.json").write_text(verdict.model_dump_json(indent=2))
        return [] if verdict.passed else [scanpolicy.summary(verdict)]


def docker_unavailable() -> str:
    """ "" when a Docker daemon answers `docker info`, else the reason for the table."""
    if shutil.which("docker") is None:
        return hostcheck.NO_DOCKER
    try:
        probe = subprocess.run(["docker", "info"], capture_output=True, timeout=60, check=False)
    except subprocess.TimeoutExpired:
        return hostcheck.NO_DOCKER
    return "" if probe.returncode == 0 else hostcheck.NO_DOCKER


def copy_context(root: Path, include: Sequence[str], target: Path) -> None:
    """The build context the engine uploads: the included folders and files, without the
    environments and caches the engine leaves out (recipes.SOURCE_IGNORE)."""
    ignore = shutil.ignore_patterns(*recipes.context_excludes())
    for entry in include:
        source = root / entry.rstrip("/")
        destination = target / entry.rstrip("/")
        if source.is_dir():
            shutil.copytree(source, destination, ignore=ignore, symlinks=True)
        elif source.is_file():
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)
