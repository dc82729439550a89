"""The stages as plain async builders: catalog, plan, lint, test, build, scan, publish, check.

`Pipeline` holds the source directory and the pinned images; `ci.main.Ci` wraps each method in a
@function of a few lines. Every decision (what is affected, which tags, does the scan pass) is
made by `ci.core`.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import dagger
from dagger import dag

from ci.core import buildplan, recipes, scanpolicy
from ci.core.affected import CHARTS_DIR, Plan, affected, is_library_chart
from ci.core.catalog import SERVICE_FILE, SERVICES_DIR, Catalog, Service, build_catalog
from ci.core.report import StageResult, failed, summary
from ci.core.toolchain import (
    NPM_LOCK_FILE,
    SYSTEM_PACKAGES_FILE,
    SystemPackage,
    describe_exit,
    killed_by,
    npm_folders,
    parse_system_packages,
)
from ci.engine import toolchains
from ci.engine.toolchains import Images

SCAN_IGNORE_FILE = "ci/scan-ignore.yaml"
REPORTS = "/reports"
OUTPUT_TAIL = 4000
TRIVY_CACHE = "/root/.cache/trivy"
TRIVY_DB = "/trivy-db"

Stage = Callable[[], Awaitable[str]]


class StageFailedError(RuntimeError):
    """A stage ran and its verdict is negative (tests failed, scan blocked)."""


@dataclass(frozen=True)
class TestRun:
    reports: dagger.Directory
    exit_code: int
    output: str


@dataclass(frozen=True)
class ScanRun:
    reports: dagger.Directory
    verdict: scanpolicy.Verdict
    hadolint_errors: list[str]

    @property
    def passed(self) -> bool:
        return self.verdict.passed and not self.hadolint_errors

    def explain(self) -> str:
        lines = [scanpolicy.summary(self.verdict)]
        lines += [f"  hadolint error {e}" for e in self.hadolint_errors]
        return "\n".join(lines)


def tail(text: str) -> str:
    return text if len(text) <= OUTPUT_TAIL else "...\n" + text[-OUTPUT_TAIL:]


def describe(exc: BaseException) -> str:
    """A failure as text: the failing command's output for exec errors."""
    if isinstance(exc, dagger.ExecError):
        status = describe_exit(exc.exit_code)
        return tail(f"{' '.join(exc.command)} {status}\n{exc.stdout}\n{exc.stderr}")
    return tail(f"{type(exc).__name__}: {exc}")


@dataclass(frozen=True)
class Pipeline:
    source: dagger.Directory
    images: Images
    # One per function call: steps that must run once per run (the Trivy DB refresh) carry it,
    # so the engine neither repeats them inside the run nor serves them from an older run.
    run: str = field(default_factory=lambda: uuid.uuid4().hex)

    async def catalog(self) -> Catalog:
        """services/*/service.yaml from the source directory, validated by the core."""
        entries = [e.rstrip("/") for e in await self.source.entries(path=SERVICES_DIR)]
        folders = {
            name
            for name in entries
            if not name.startswith(".")
            and await self.source.exists(
                f"{SERVICES_DIR}/{name}", expected_type=dagger.ExistsType.DIRECTORY_TYPE
            )
        }
        paths = await self.source.glob(f"{SERVICES_DIR}/*/{SERVICE_FILE}")
        texts = {p: await self.source.file(p).contents() for p in sorted(paths)}
        return build_catalog(texts, folders)

    async def service(self, name: str) -> Service:
        return (await self.catalog()).get(name)

    async def pinned_images(self) -> dict[str, str | None]:
        """service -> `tag@digest` pinned in values-staging.yaml of the source (or None)."""
        pinned: dict[str, str | None] = {}
        for name in (await self.catalog()).names():
            path = buildplan.values_file(name)
            exists = await self.source.exists(path)
            text = await self.source.file(path).contents() if exists else ""
            pinned[name] = buildplan.pinned_image(text, path) if exists else None
        return pinned

    async def library_charts(self) -> set[str]:
        charts = await self.source.glob(f"{CHARTS_DIR}/*/Chart.yaml")
        texts = {path: await self.source.file(path).contents() for path in charts}
        return {path.split("/")[1] for path, text in texts.items() if is_library_chart(text)}

    async def plan(
        self,
        repo: dagger.Directory,
        base: str,
        everything: bool,
        changed: list[str] | None = None,
    ) -> Plan:
        """Affected services from `git diff --name-only base...HEAD` over `repo`, or from the
        `changed` paths when the caller computed the diff itself."""
        catalog, charts = await self.catalog(), await self.library_charts()
        if changed is not None:
            return affected(catalog, changed, charts, everything=everything, base=base or None)
        git = toolchains.git(repo, self.images)
        head = (await git.with_exec(["git", "rev-parse", "HEAD"]).stdout()).strip()
        verify = ["git", "rev-parse", "--verify", f"{base}^{{commit}}"]
        base_sha = (await git.with_exec(verify).stdout()).strip()
        # -z: paths as they are, not C-quoted (see ci.core.gitfacts.diff_names)
        names = ["git", "diff", "--name-only", "-z", "--no-renames", f"{base_sha}...{head}"]
        files = (await git.with_exec(names).stdout()).split("\0")[:-1]
        return affected(catalog, files, charts, everything=everything, base=base_sha, head=head)

    async def system_packages(self) -> list[SystemPackage]:
        text = await self.source.file(SYSTEM_PACKAGES_FILE).contents()
        return parse_system_packages(text, SYSTEM_PACKAGES_FILE)

    async def toolchain(self, context: dagger.Directory | None = None) -> dagger.Container:
        """The one container lint and test run in (ci.engine.toolchains.toolchain), over the
        whole source or a narrower `context` of it."""
        source = self.source if context is None else context
        npm = npm_folders(await source.glob(f"**/{NPM_LOCK_FILE}"))
        return toolchains.toolchain(source, self.images, await self.system_packages(), npm)

    async def service_toolchain(self, service: Service) -> dagger.Container:
        """The toolchain over what a service's lint and test read (SERVICE_STAGE_CONTEXT): a
        README change leaves their cached results valid."""
        context = self.source.filter(include=recipes.SERVICE_STAGE_CONTEXT)
        return toolchains.for_service(await self.toolchain(context), service)

    async def lint(self, name: str) -> str:
        service = await self.service(name)
        ctr = await self.service_toolchain(service)
        for step in recipes.lint_steps(service):
            ctr = with_step(ctr, step)
        return await ctr.stdout()

    async def test(self, name: str) -> TestRun:
        """SERVICE's own suite, with a PostgreSQL/Redis of its own as service.yaml `needs`."""
        service = await self.service(name)
        ctr = await self.service_toolchain(service)
        ctr = await toolchains.with_backing_services(ctr, service, self.images)
        return await run_tests(ctr, recipes.step_for_tests(service))

    async def test_repo(self, repo: dagger.Directory) -> TestRun:
        """The repository suite (tests/ and the libraries) in the toolchain with the checkout's
        history at /repo/.git (`repo`: the .git directory): it starts its own PostgreSQL and
        Redis from the toolchain's binaries, like `make test` does."""
        step = recipes.step_for_repo_tests(await self.catalog())
        return await run_tests(toolchains.with_history(await self.toolchain(), repo), step)

    async def build(
        self, name: str, version: str, revision: str, source_url: str
    ) -> dagger.Container:
        service = await self.service(name)
        return self.build_service(service, version, revision, source_url)

    def build_service(
        self,
        service: Service,
        version: str,
        revision: str,
        source_url: str,
        platform: str | None = None,
    ) -> dagger.Container:
        """docker build -f services/<name>/Dockerfile over a context narrowed to what it needs,
        for `platform` (linux/arm64, ...; the engine's own when None)."""
        context = self.source.filter(include=recipes.build_context(service))
        args = recipes.build_args(version, revision, source_url)
        image = context.docker_build(
            dockerfile=recipes.dockerfile(service),
            platform=dagger.Platform(platform) if platform else None,
            build_args=[dagger.BuildArg(name=k, value=v) for k, v in args.items()],
        )
        for key, value in recipes.oci_labels(service, version, revision, source_url).items():
            image = image.with_label(key, value)
        return image

    async def ignore_file(self) -> str:
        if await self.source.exists(SCAN_IGNORE_FILE):
            return await self.source.file(SCAN_IGNORE_FILE).contents()
        return ""

    async def scan(self, name: str, severity: str, image: dagger.Container) -> ScanRun:
        """Trivy (vulnerabilities, SARIF, CycloneDX SBOM), hadolint, then the policy verdict."""
        service = await self.service(name)
        scanpolicy.Severity.parse(severity)  # fail before any work on a bad argument
        trivy = self.trivy(image)
        # hadolint from the toolchain's venv: the version `make lint` runs (pyproject.toml).
        dockerfile = recipes.dockerfile(service)
        hadolint = await self.toolchain()
        lint_json = await with_step(hadolint, recipes.hadolint_step(dockerfile, "json")).stdout()
        lint_sarif = await with_step(hadolint, recipes.hadolint_step(dockerfile, "sarif")).stdout()
        report = await trivy.file(f"{REPORTS}/trivy.json").contents()
        today = dt.datetime.now(tz=dt.UTC).date()
        verdict = scanpolicy.evaluate(report, severity, await self.ignore_file(), today)
        reports = (
            trivy.directory(REPORTS)
            .with_new_file("hadolint.json", lint_json)
            .with_new_file("hadolint.sarif", lint_sarif)
            .with_new_file("verdict.json", verdict.model_dump_json(indent=2))
        )
        return ScanRun(reports, verdict, scanpolicy.hadolint_errors(lint_json))

    def trivy_db(self) -> dagger.Directory:
        """Trivy's vulnerability DB, refreshed once per run.

        Trivy locks its cache while it works, so concurrent scans on one shared cache volume
        fail. The volume is used by this one step only, in LOCKED mode (other pipelines on the
        engine wait their turn), and Trivy downloads only when its metadata says the DB is
        stale. The run id keeps the engine from serving the step from an older run; within the
        run every scan gets the same step, which the engine executes once. Scans receive a
        read-only copy and `--skip-db-update`.
        """
        cache = dag.cache_volume("ci-trivy-db")
        return (
            dag.container()
            .from_(self.images.trivy)
            .with_mounted_cache(TRIVY_CACHE, cache, sharing=dagger.CacheSharingMode.LOCKED)
            .with_env_variable("CI_RUN", self.run)
            .with_exec(["trivy", "image", "--download-db-only", "--cache-dir", TRIVY_CACHE])
            .with_exec(["cp", "-R", f"{TRIVY_CACHE}/db", TRIVY_DB])
            .directory(TRIVY_DB)
        )

    def trivy(self, image: dagger.Container) -> dagger.Container:
        offline = ["--cache-dir", TRIVY_CACHE, "--skip-db-update"]
        ctr = (
            dag.container()
            .from_(self.images.trivy)
            .with_directory(f"{TRIVY_CACHE}/db", self.trivy_db())
            .with_env_variable("TRIVY_NO_PROGRESS", "true")
            .with_mounted_file("/image.tar", image.as_tarball())
            .with_directory(REPORTS, dag.directory())
        )
        for step in recipes.trivy_steps("/image.tar", REPORTS, offline):
            ctr = ctr.with_exec(step.args)
        return ctr

    async def publish(
        self,
        image: dagger.Container,
        name: str,
        registry: str,
        username: str,
        password: dagger.Secret,
        tags: list[str],
        variants: list[dagger.Container] | None = None,
    ) -> list[str]:
        """Push `image` under every tag; returns `ref@sha256:...` per tag. With `variants`
        (one build per platform) the pushed reference is their multi-platform index."""
        if not tags:
            raise ValueError("publish: give at least one --tags value")
        authed = image.with_registry_auth(recipes.registry_host(registry), username, password)
        return [
            await authed.publish(recipes.image_ref(registry, name, tag), platform_variants=variants)
            for tag in tags
        ]

    async def check_service(
        self, service: Service, severity: str, labels: BuildLabels
    ) -> list[StageResult]:
        """lint, test, build, scan of one service; each stage recorded, none hides another.

        The image is built with the labels it will be published with, so what is scanned here
        is, layer for layer, what `deploy` pushes.
        """
        results: list[StageResult] = []
        record = recorder(service.name, results)
        image = self.build_service(
            service, labels.version(service.name), labels.revision, labels.source_url
        )

        async def lint() -> str:
            return await self.lint(service.name)

        async def test() -> str:
            return passed_or_raise(await self.test(service.name))

        async def build() -> str:
            await image.sync()
            return ""

        async def scan() -> str:
            run = await self.scan(service.name, severity, image)
            if not run.passed:
                raise StageFailedError(run.explain())
            return ""

        async with anyio.create_task_group() as group:
            group.start_soon(record, "lint", lint)
            group.start_soon(record, "test", test)
            group.start_soon(record, "build", build)
        if all(r.ok for r in results if r.stage == "build"):
            await record("scan", scan)
        return results

    async def service_check(self, stage: str, name: str) -> None:
        """One stage of one service as a `dagger check` (ci.core.checks): raises the reason
        when it fails."""
        if stage == "lint":
            await self.lint(name)
        elif stage == "test":
            passed_or_raise(await self.test(name))
        elif stage == "scan":
            await self.scan_gate(await self.service(name), "HIGH")
        else:
            raise ValueError(f"unknown check stage {stage!r} (known: lint, test, scan)")

    async def scan_gate(self, service: Service, severity: str) -> str:
        """Build and scan SERVICE; raises when the gate blocks it."""
        image = self.build_service(service, "scan", "", "")
        run = await self.scan(service.name, severity, image)
        if not run.passed:
            raise StageFailedError(run.explain())
        return ""

    async def generated(self, toolchain: dagger.Container) -> dagger.Directory:
        """Every generated file (ci.core.generated), rendered in the toolchain."""
        out = "/generated"
        cmd = ["python", "-m", "ci.generate", "--repo", toolchains.REPO, "--out", out]
        ctr = toolchain.with_env_variable("PYTHONPATH", f"{toolchains.REPO}/ci/src")
        return ctr.with_directory(out, dag.directory()).with_exec(cmd).directory(out)

    async def check(
        self,
        plan: Plan,
        repo: dagger.Directory,
        severity: str,
        labels: BuildLabels,
        also: Sequence[tuple[str, str, Stage]] = (),
    ) -> tuple[str, bool]:
        """Every planned service and the repository suite concurrently, plus the `also` stages
        (name, stage, run: e.g. the platform's integration); the summary and whether all
        passed."""
        catalog = await self.catalog()
        results: list[StageResult] = []

        async def one(service: Service) -> None:
            results.extend(await self.check_service(service, severity, labels))

        async def repo_tests() -> str:
            return passed_or_raise(await self.test_repo(repo))

        async with anyio.create_task_group() as group:
            if recipes.runs_repo_tests(plan):
                group.start_soon(recorder(recipes.REPO_SUITE, results), "test", repo_tests)
            for name in plan.names():
                group.start_soon(one, catalog.get(name))
            for name, stage, run in also:
                group.start_soon(recorder(name, results), stage, run)
        return summary(results), not failed(results)


@dataclass(frozen=True)
class BuildLabels:
    """VERSION/REVISION/source of the images a check builds (per service when they differ)."""

    revision: str = "unknown"
    source_url: str = ""
    versions: Mapping[str, str] = field(default_factory=dict)
    default_version: str = "dev"

    def version(self, service: str) -> str:
        return self.versions.get(service, self.default_version)


def recorder(
    name: str, results: list[StageResult]
) -> Callable[[str, Stage], Coroutine[Any, Any, None]]:
    """Runs a stage and appends its result; every failure becomes a recorded result, so one
    stage never hides another."""

    async def record(stage: str, run: Stage) -> None:
        started = time.monotonic()
        try:
            ok, detail = True, await run()
        except Exception as exc:
            ok, detail = False, describe(exc)
        seconds = time.monotonic() - started
        results.append(
            StageResult(service=name, stage=stage, ok=ok, detail=detail, seconds=seconds)
        )

    return record


def passed_or_raise(run: TestRun) -> str:
    if run.exit_code != 0:
        raise StageFailedError(run.output)
    return ""


async def run_tests(ctr: dagger.Container, step: recipes.Step) -> TestRun:
    """Run a test step and keep its reports; failing tests are a result, not an error.

    `ReturnType.ANY` accepts exit codes 0-127 and 192-255 only: a run killed by a signal
    (128 + n: 137 for the OOM killer's SIGKILL, 143 for SIGTERM) still raises ExecError. That
    one becomes a failed run naming the signal; its JUnit file is lost with the container.
    """
    ran = with_step(
        ctr.with_directory(recipes.JUNIT_DIR, dag.directory()), step, dagger.ReturnType.ANY
    )
    try:
        code = await ran.exit_code()
    except dagger.ExecError as exc:
        if killed_by(exc.exit_code) is None:
            raise
        output = f"{' '.join(step.args)} {describe_exit(exc.exit_code)}\n{exc.stdout}\n{exc.stderr}"
        return TestRun(
            reports=test_reports(dag.directory(), output, exc.exit_code),
            exit_code=exc.exit_code,
            output=tail(output),
        )
    output = f"{await ran.stdout()}\n{await ran.stderr()}"
    reports = test_reports(ran.directory(recipes.JUNIT_DIR), output, code)
    return TestRun(reports=reports, exit_code=code, output=tail(output))


with_step = toolchains.with_step


def test_reports(junit: dagger.Directory, output: str, exit_code: int) -> dagger.Directory:
    return (
        dag.directory()
        .with_directory(".", junit)
        .with_new_file("output.txt", output)
        .with_new_file("exit-code", f"{exit_code}\n")
    )
