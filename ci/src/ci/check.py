"""`python -m ci.check --base <ref> | --all`: the pipeline's check on this machine, no engine.

The same plan (ci.core.affected) and the same recipes (ci.core.recipes) as `dagger call check`,
run as processes, several at a time (one per core unless --jobs): lint and test of every
affected service, the repository suite (test-repo), build and scan where Docker, Trivy and
hadolint exist (otherwise the row says "not run: <reason>"). PostgreSQL and Redis come from
the test harness. Artefacts go to test-output/<service>/ (junit.xml, output.txt, exit-code,
lint.log, build.log, scan/); the summary table is the engine's. Exit status 1 when a stage
failed, 2 on usage errors, 128+N when stopped by signal N.

`--check PATTERN` (repeatable) runs the checks of `dagger check PATTERN` instead, by the
engine's names (ci.core.checks: `lint-backend`, `scan-*`, `test-repository`,
`generated-up-to-date`), for every service as `dagger check` does.

`--engine-first` (what `make check` uses) runs `dagger call check` (`dagger check PATTERN...`
with --check) with the same arguments when a dagger CLI and a reachable engine exist, and says
in one line why not otherwise.
`--recipe lint|test` runs the repository recipe (`make lint`, `make test`) in the foreground.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ci.core import checks, hostcheck, recipes, scanpolicy
from ci.core.affected import Plan, affected, library_charts
from ci.core.catalog import Catalog, CatalogError, load_catalog
from ci.core.gitfacts import GitError, git
from ci.core.report import StageResult, duration, failed, summary
from ci.host import processes
from ci.host.stages import HostStages, docker_unavailable

# PostgreSQL and Redis come from the local app's servers (ci.localapp.servers), as in the tests.
from ci.localapp.servers import HarnessError
from ci.plan import make_plan

USAGE_ERROR = 2
FAILED = 1
ENGINE_PROBE_TIMEOUT = 300.0
HEARTBEAT_SECONDS = 60.0
DEFAULT_BASE = "origin/main"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ci.check",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--base", help=f"git ref to compare with (default: {DEFAULT_BASE})")
    p.add_argument("--head", default="HEAD", help="git ref of the change (default: HEAD)")
    p.add_argument("--all", action="store_true", help="check every service")
    p.add_argument("--severity", default="HIGH", help="scan gate (LOW|MEDIUM|HIGH|CRITICAL)")
    p.add_argument("--version", default="dev", help="VERSION build arg and label")
    p.add_argument("--revision", default="unknown", help="REVISION build arg and label")
    p.add_argument("--repo", type=Path, help="repository root (default: the git top level)")
    p.add_argument("--output", type=Path, help="artefacts directory (default: REPO/test-output)")
    p.add_argument("--jobs", type=int, help="jobs at a time (default: one per core)")
    p.add_argument(
        "--engine-first",
        action="store_true",
        help="run `dagger call check` instead when a dagger CLI and an engine are reachable",
    )
    p.add_argument(
        "--check",
        action="append",
        default=[],
        metavar="PATTERN",
        help="only the checks of `dagger check PATTERN` (lint-*, test-auth, ...), every service",
    )
    p.add_argument("--recipe", choices=("lint", "test"), help="run `make lint`/`make test`")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(arguments)
    if not processes.supervised():
        if args.engine_first and not args.recipe:
            reason = engine_unavailable()
            if reason is None:
                return run_on_engine(args)
            print(f"ci.check: {reason}; running the pipeline's stages on the host", flush=True)
        return processes.run_supervised(["ci.check", *arguments])
    try:
        processes.become_supervisor()
        return supervised_main(args)
    except processes.Interrupted as stop:
        print(f"ci.check: stopped by {stop}", file=sys.stderr, flush=True)
        return 128 + stop.signum
    finally:
        processes.end_process_tree()


def supervised_main(args: argparse.Namespace) -> int:
    try:
        root = (
            args.repo or Path(git(Path.cwd(), "rev-parse", "--show-toplevel").strip())
        ).resolve()
        if args.recipe:
            return run_recipe(root, args.recipe)
        scanpolicy.Severity.parse(args.severity)  # before any work, like the engine's scan
        catalog = load_catalog(root)
        checks.select(args.check, checks.all_names(catalog.names()))  # a typo is a usage error
        plan = host_plan(root, catalog, args)
        workers = hostcheck.parallelism(os.cpu_count(), args.jobs)
    except (GitError, CatalogError, ValueError) as exc:
        print(f"ci.check: {exc}", file=sys.stderr)
        return USAGE_ERROR
    stages = HostStages(
        root=root,
        output=(args.output or root / "test-output").resolve(),
        tools=detect_tools(),
        severity=args.severity,
        version=args.version,
        revision=args.revision,
    )
    try:
        results = HostCheck(stages, catalog, workers).run(plan, args.check)
    except HarnessError as exc:
        print(f"ci.check: the test servers could not start: {exc}", file=sys.stderr)
        return FAILED
    finally:
        stages.servers.stop()
    text = summary(results)
    print(text, flush=True)
    (stages.output / "summary.txt").write_text(text + "\n")
    return FAILED if failed(results) else 0


def host_plan(root: Path, catalog: Catalog, args: argparse.Namespace) -> Plan:
    """The plan as `dagger call check` makes it; --all without --base needs no history.
    `dagger check` (--check) covers every service."""
    if args.check or (args.all and args.base is None):
        return affected(catalog, [], library_charts(root), everything=True)
    return make_plan(root, args.base or DEFAULT_BASE, args.head, everything=args.all)


# --- the engine, when there is one ----------------------------------------------------------


def engine_unavailable() -> str | None:
    """Why `dagger call check` cannot run here, or None when it can."""
    cli = shutil.which("dagger")
    if cli is None:
        return "no dagger CLI on PATH"
    try:
        probe = subprocess.run(
            [cli, "core", "version"],
            capture_output=True,
            text=True,
            timeout=ENGINE_PROBE_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"no Dagger engine answered within {ENGINE_PROBE_TIMEOUT:.0f}s"
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["no output"])[-1]
        return f"no reachable Dagger engine ({last})"
    return None


def engine_arguments(args: argparse.Namespace) -> list[str]:
    """The arguments `dagger call check` shares with host mode."""
    out = ["--base", args.base or DEFAULT_BASE]
    out += ["--all"] if args.all else []
    out += ["--severity", args.severity, "--version", args.version, "--revision", args.revision]
    return out


def run_on_engine(args: argparse.Namespace) -> int:
    if args.check:
        command = ["dagger", "check", *args.check]
    else:
        command = ["dagger", "call", "check", *engine_arguments(args)]
    print(f"ci.check: Dagger engine reachable: {' '.join(command)}", flush=True)
    return subprocess.run(command, check=False).returncode


# --- the machine ------------------------------------------------------------------------------


def detect_tools() -> hostcheck.Tools:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return hostcheck.Tools(
        docker=docker_unavailable(),
        trivy=shutil.which("trivy", path=path) is not None,
        hadolint=shutil.which("hadolint", path=path) is not None,
    )


# --- the repository recipes: make lint / make test --------------------------------------------


def repo_layout(root: Path, catalog: Catalog) -> recipes.RepoLayout:
    projects = sorted(p.parent for p in root.glob("services/*/pyproject.toml"))
    existing = [p for p in projects if p.name != "frontend"]

    def relative(paths: list[Path]) -> list[str]:
        return [str(p.relative_to(root)) for p in paths if p.exists()]

    return recipes.RepoLayout(
        source_roots=relative([*(p / "src" for p in existing), root / "ci" / "src"]),
        test_dirs=relative(
            [*(p / "tests" for p in existing), root / recipes.REPO_TESTS_DIR, root / "bench"]
        ),
        dockerfiles=relative(sorted(root.glob("services/*/Dockerfile"))),
        shell_scripts=relative(
            [*sorted(root.glob("k3s/*.sh")), root / ".ci" / "run", *sorted(root.glob(".ci/*.sh"))]
        ),
        yaml_dirs=relative([root / "charts", root / "argocd", root / "k3s"]),
        node_folders=[s.folder for s in catalog.services if s.kind == "node"],
    )


def run_recipe(root: Path, name: str) -> int:
    """The repository recipe step by step, output straight to the terminal; the first failing
    step ends it with its exit status."""
    layout = repo_layout(root, load_catalog(root))
    steps = recipes.repo_lint_steps(layout) if name == "lint" else recipes.repo_test_steps(layout)
    bin_dir = Path(sys.executable).parent
    for step in steps:
        print(
            f"$ {' '.join(step.args)}" + (f"   (in {step.workdir})" if step.workdir != "." else ""),
            flush=True,
        )
        env = {**os.environ, **step.env, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
        try:
            code = subprocess.run(
                step.args, cwd=root / step.workdir, env=env, check=False
            ).returncode
        except FileNotFoundError:
            print(f"ci.check: {step.name}: command not found: {step.args[0]}", file=sys.stderr)
            return 127
        if code != 0:
            print(f"ci.check: {step.name} failed (exit {code})", file=sys.stderr)
            return code
    return 0


# --- the run ------------------------------------------------------------------------------


@dataclass
class Progress:
    """One line when a stage starts and ends, and every minute the stages still running."""

    started: float = field(default_factory=time.monotonic)
    running: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: threading.Event = field(default_factory=threading.Event)

    def say(self, text: str) -> None:
        print(f"[{duration(time.monotonic() - self.started):>7}] {text}", flush=True)

    def start(self, label: str) -> None:
        with self.lock:
            self.running[label] = time.monotonic()
            self.say(f"{label}: started")

    def finish(self, label: str, result: StageResult) -> None:
        with self.lock:
            self.running.pop(label, None)
            self.say(
                f"{result.service} {result.stage}: {result.verdict} ({duration(result.seconds)})"
            )

    def heartbeat(self) -> None:
        while not self.done.wait(HEARTBEAT_SECONDS):
            with self.lock:
                now = time.monotonic()
                busy = ", ".join(f"{k} {duration(now - t)}" for k, t in self.running.items())
                self.say(f"running: {busy or 'nothing'}")


@dataclass
class HostCheck:
    stages: HostStages
    catalog: Catalog
    workers: int
    progress: Progress = field(default_factory=Progress)

    def run(self, plan: Plan, patterns: Sequence[str] = ()) -> list[StageResult]:
        jobs = hostcheck.checked_jobs(plan, patterns) if patterns else hostcheck.jobs(plan)
        tools = self.stages.tools
        self.progress.say(
            f"host mode: {len(plan.names())} service(s), {len(jobs)} job(s), {self.workers} at a "
            f"time; docker: {tools.docker or 'yes'}, trivy: {'yes' if tools.trivy else 'no'}, "
            f"hadolint: {'yes' if tools.hadolint else 'no'}; artefacts in {self.stages.output}"
        )
        if any("postgres" in self.catalog.get(name).needs for name in plan.names()):
            # Started by the main thread: the harness ties a server's life to the thread that
            # started it (parent-death signal), and this one lives as long as the run.
            self.stages.servers.database_url()
        beat = threading.Thread(target=self.progress.heartbeat, daemon=True)
        beat.start()
        results: list[StageResult] = []
        pool = ThreadPoolExecutor(max_workers=self.workers)
        try:
            futures: list[Future[list[StageResult]]] = [pool.submit(self.job, j) for j in jobs]
            for future in futures:
                results += future.result()
        except BaseException:
            # Stopped: end the running commands first, or the pool would wait for them.
            processes.end_process_tree()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            self.progress.done.set()
        return results

    def job(self, job: hostcheck.Job) -> list[StageResult]:
        if job == hostcheck.GENERATED_JOB:
            return [self.timed(job.service, job.stage, self.stages.generated_check)]
        if job.service == recipes.REPO_SUITE:
            return [self.timed(job.service, "test", lambda: self.stages.repo_tests(self.catalog))]
        service = self.catalog.get(job.service)
        if job.stage == "lint":
            return [self.timed(service.name, "lint", lambda: self.stages.lint(service))]
        if job.stage == "test":
            return [self.timed(service.name, "test", lambda: self.stages.test(service))]
        built = self.timed(service.name, "build", lambda: self.stages.build(service))
        image = built.ok and not built.not_run
        scanned = self.timed(service.name, "scan", lambda: self.stages.scan(service, image))
        return [built, scanned]

    def timed(self, service: str, stage: str, run: Callable[[], StageResult]) -> StageResult:
        label = f"{service} {stage}"
        self.progress.start(label)
        started = time.monotonic()
        try:
            result = run()
        except Exception as exc:  # a broken stage is a failed row, not a lost run
            result = StageResult(
                service=service, stage=stage, ok=False, detail=f"{type(exc).__name__}: {exc}"
            )
        result = result.model_copy(update={"seconds": time.monotonic() - started})
        self.progress.finish(label, result)
        return result


if __name__ == "__main__":
    sys.exit(main())
