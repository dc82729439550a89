"""The Ci object: public Dagger functions only, each a few lines over `ci.engine`."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar, cast

import dagger
from dagger import (
    DefaultPath,
    Doc,
    Ignore,
    Name,
    dag,
    enum_type,
    function,
    object_type,
)

from ci.core import k3s_server, recipes, toolversions
from ci.core.affected import plan_json
from ci.core.catalog import catalog_json
from ci.core.checks import ServiceCheck, service_checks
from ci.core.gitfacts import GitFacts
from ci.core.versions import build_version
from ci.engine import k3s
from ci.engine.delivery import (
    Credentials,
    Delivery,
    DeployRequest,
    PreviewRequest,
    signature_args,
)
from ci.engine.stages import BuildLabels, Pipeline, StageFailedError, TestRun, passed_or_raise
from ci.engine.toolchains import REPO, Images
from ci.service_names import SERVICE_NAMES

F = TypeVar("F", bound=Callable[..., object])
T = TypeVar("T")


def never_cached(func: F) -> F:
    """`@function(cache="never")`: for pushes, and for verdicts that depend on more than the
    arguments (the vulnerability DB of today, the ignore list's expiry dates against today's
    date), which a long-lived engine would otherwise serve from its 7-day function cache.
    The SDK's typed overloads (0.21.11) omit `cache`, its runtime accepts it."""
    decorate = cast("Callable[..., Callable[[F], F]]", function)
    return decorate(cache="never")(func)


# Kept out of every source upload (host mode copies build contexts without them too).
SOURCE_IGNORE = recipes.SOURCE_IGNORE
# The plan needs git history, and nothing else.
GIT_ONLY = ["**", "!.git", "!.git/**"]

ServiceName = Annotated[str, Doc("service name: a folder under services/ with a service.yaml")]
Version = Annotated[str, Doc("VERSION build arg and image label (see the `version` function)")]
Revision = Annotated[str, Doc("REVISION build arg and image label: the full git sha")]


@enum_type
class Severity(enum.Enum):
    """Scan gate: findings at or above this severity fail (the CLI accepts only these)."""

    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"


@enum_type
class ReleaseMode(enum.Enum):
    """How a release pins production."""

    COMMIT = "commit"
    """one commit on the GitOps branch"""
    PULL_REQUEST = "pull-request"
    """a pull request for a person to merge"""


Gate = Annotated[Severity, Doc("scan gate: findings at or above this severity fail")]
Base = Annotated[str, Doc("git ref the changes are compared with (git diff <base>...HEAD)")]
Everything = Annotated[bool, Doc("select every service, not only the affected ones"), Name("all")]
PublicKey = Annotated[
    dagger.File | None,
    Doc("cosign.pub: every digest pinned must carry a cosign signature it verifies"),
]
AllowUnsigned = Annotated[
    bool, Doc("LOCAL USE ONLY: pin digests whose signature does not verify, named loudly")
]
Changed = Annotated[
    list[str] | None,
    Doc("changed paths, when the caller ran the diff itself (then BASE is only recorded)"),
]
Repo = Annotated[
    dagger.Directory,
    Doc("the checkout with its .git directory (for the diff)"),
    DefaultPath("/"),
    Ignore(GIT_ONLY),
]
# Delivery arguments (GitOps commits are pushed to REPO_URL with GIT_TOKEN).
RepoUrl = Annotated[str, Doc("HTTPS URL of this repository; GitOps commits are pushed there")]
GitToken = Annotated[dagger.Secret, Doc("token that may push to repo-url (e.g. env://GIT_TOKEN)")]
GitopsBranch = Annotated[str, Doc("the branch Argo CD follows")]
Env = Annotated[str, Doc("environment: edits charts/<service>/values-<env>.yaml")]
Services = Annotated[list[str] | None, Doc("only these services (default: the affected ones)")]
Registry = Annotated[str, Doc("registry and namespace, e.g. ghcr.io/acme")]
GitHubToken = Annotated[dagger.Secret | None, Doc("GitHub token for the PR comment / release PR")]
GitHubRepo = Annotated[str, Doc("owner/name on GitHub (PR comment, release PR)")]


CheckFunction = Callable[["Ci"], Awaitable[None]]


def service_check(check: ServiceCheck) -> CheckFunction:
    """The Dagger function of one service check: named and described by `check`."""

    async def run(self: Ci) -> None:
        await self._pipeline().service_check(check.stage, check.service)

    run.__name__ = run.__qualname__ = check.python_name
    register = cast("Callable[..., Callable[[CheckFunction], CheckFunction]]", function)
    # A scan's verdict depends on today's vulnerability DB: never from the function cache.
    cache = "never" if check.stage == "scan" else None
    # The SDK's decorators are typed as returning a union (0.21.11); both return `run` itself.
    return register(doc=check.doc, cache=cache)(cast("CheckFunction", dagger.check(run)))


def with_service_checks(cls: type[T]) -> type[T]:
    """Adds a check per stage of every service (ci/src/ci/service_names.py, generated from the
    catalog) before @object_type registers the class's functions."""
    for check in service_checks(SERVICE_NAMES):
        if hasattr(cls, check.python_name):
            raise TypeError(f"check {check.name}: {cls.__name__} has a function of that name")
        setattr(cls, check.python_name, service_check(check))
    return cls


@object_type
@with_service_checks
class Ci:
    """Lint, test, build, scan and publish the services of this repository."""

    source: Annotated[
        dagger.Directory,
        Doc("repository root (defaults to the git root of this module)"),
        DefaultPath("/"),
        Ignore(SOURCE_IGNORE),
    ]
    # Defaults: ci.core.toolversions, the one source every Dockerfile, chart and workflow is
    # checked against (tests/pipeline/test_tool_versions.py).
    python_image: Annotated[str, Doc("Python image of the toolchain and delivery runner")] = (
        toolversions.PYTHON_IMAGE
    )
    node_image: Annotated[str, Doc("Node image the toolchain takes node and npm from")] = (
        toolversions.NODE_IMAGE
    )
    postgres_image: Annotated[str, Doc("PostgreSQL for tests")] = toolversions.POSTGRES_IMAGE
    redis_image: Annotated[str, Doc("Redis for tests")] = toolversions.REDIS_IMAGE
    trivy_image: Annotated[str, Doc("Trivy image scanner")] = toolversions.TRIVY_IMAGE
    git_image: Annotated[str, Doc("git for the change plan")] = toolversions.GIT_IMAGE
    k3s_image: Annotated[str, Doc("K3s of the integration stage (k3s/versions.env)")] = (
        k3s.K3S_IMAGE
    )

    def _pipeline(self) -> Pipeline:
        images = Images(
            python=self.python_image,
            node=self.node_image,
            postgres=self.postgres_image,
            redis=self.redis_image,
            trivy=self.trivy_image,
            git=self.git_image,
        )
        return Pipeline(source=self.source, images=images)

    @function
    async def services(self) -> str:
        """The service catalog (every services/*/service.yaml, validated) as JSON."""
        return catalog_json(await self._pipeline().catalog())

    @function
    async def plan(
        self,
        repo: Repo,
        base: Base = "origin/main",
        everything: Everything = False,
        changed: Changed = None,
    ) -> str:
        """Which services the changes since BASE affect, and why, as JSON."""
        plan = await self._pipeline().plan(repo, base, everything, changed)
        return plan_json(plan)

    @function
    def version(
        self,
        service: ServiceName,
        sha: Annotated[str, Doc("full git sha of the build")],
        branch: Annotated[str, Doc("branch name (empty for a tag build)")] = "",
        tags: Annotated[list[str] | None, Doc("git tags on the commit, e.g. auth-v1.2.0")] = None,
    ) -> str:
        """VERSION, REVISION and image tags for SERVICE from git facts, as JSON."""
        facts = GitFacts(sha=sha, branch=branch or None, tags=tuple(tags or ()))
        return build_version(service, facts).model_dump_json(indent=2)

    @function
    async def lint(self, service: ServiceName) -> str:
        """ruff + ruff format + mypy --strict (python) or eslint + tsc (node) for SERVICE."""
        return await self._pipeline().lint(service)

    @function
    async def test(
        self,
        service: ServiceName,
        allow_failure: Annotated[bool, Doc("return the reports even when tests fail")] = False,
    ) -> dagger.Directory:
        """Run SERVICE's tests (its own PostgreSQL/Redis as service.yaml needs); JUnit XML,
        output and exit code in a directory."""
        return reports_or_raise(
            f"tests of {service}", await self._pipeline().test(service), allow_failure
        )

    @function
    async def test_repo(
        self,
        repo: Repo,
        allow_failure: Annotated[bool, Doc("return the reports even when tests fail")] = False,
    ) -> dagger.Directory:
        """Run the repository suite (tests/ and the libraries: pipeline, charts, manifests,
        delivery, stack, e2e, browser) in the toolchain container, the checkout's history at
        /repo/.git; reports in a directory."""
        run = await self._pipeline().test_repo(repo)
        return reports_or_raise("the repository suite", run, allow_failure)

    @function
    async def build(
        self, service: ServiceName, version: Version = "dev", revision: Revision = "unknown"
    ) -> dagger.Container:
        """Build SERVICE's image from services/<name>/Dockerfile (repository root context)."""
        return await self._pipeline().build(service, version, revision, "")

    @never_cached
    async def scan(
        self,
        service: ServiceName,
        severity: Gate = Severity.HIGH,
        allow_failure: Annotated[bool, Doc("return the reports even when the gate fails")] = False,
    ) -> dagger.Directory:
        """Trivy + SBOM + hadolint + policy gate for SERVICE; JSON and SARIF reports in a dir."""
        pipeline = self._pipeline()
        image = await pipeline.build(service, "scan", "", "")
        run = await pipeline.scan(service, severity.value, image)
        if not run.passed and not allow_failure:
            raise StageFailedError(run.explain())
        return run.reports

    @never_cached
    async def publish(
        self,
        service: ServiceName,
        registry: Annotated[str, Doc("registry and namespace, e.g. ghcr.io/acme")],
        username: Annotated[str, Doc("registry user")],
        password: Annotated[dagger.Secret, Doc("registry password or token")],
        tags: Annotated[list[str], Doc("image tags to push")],
        version: Version = "dev",
        revision: Revision = "unknown",
        source_url: Annotated[str, Doc("org.opencontainers.image.source")] = "",
    ) -> list[str]:
        """Build and push SERVICE under every tag; returns the references with digests."""
        pipeline = self._pipeline()
        image = await pipeline.build(service, version, revision, source_url)
        return await pipeline.publish(image, service, registry, username, password, tags)

    @never_cached
    async def check(
        self,
        repo: Repo,
        base: Base = "origin/main",
        everything: Everything = False,
        severity: Gate = Severity.HIGH,
        version: Version = "dev",
        revision: Revision = "unknown",
        changed: Changed = None,
        integration: Annotated[
            bool,
            Doc("the platform on an ephemeral K3s with e2e (--integration=false leaves it out)"),
        ] = True,
    ) -> str:
        """Lint, test, build and scan every affected service, and run the repository suite,
        concurrently, plus the platform's integration on K3s; summary at the end."""
        pipeline = self._pipeline()
        plan = await pipeline.plan(repo, base, everything, changed)
        labels = BuildLabels(revision=revision, default_version=version)
        also = [k3s.integration_stage(self._cluster(pipeline), labels)]
        wanted = integration and bool(plan.names())
        stages = also if wanted else ()
        text, passed = await pipeline.check(plan, repo, severity.value, labels, stages)
        if not passed:
            raise StageFailedError(text)
        return text

    # --- `dagger check` and `dagger generate` -----------------------------------------------
    # Checks take no required argument: lint-<service>, test-<service> and scan-<service> for
    # every service of the catalog (added by `with_service_checks` below, ci.core.checks), the
    # repository suite and the generated files. `make check --check PATTERN` runs the same
    # names on the host.

    @function
    @dagger.check
    async def test_repository(self, repo: Repo) -> None:
        """The repository suite (tests/ and the libraries) in the engine's layout."""
        passed_or_raise(await self._pipeline().test_repo(repo))

    @function
    @dagger.check
    async def generated_up_to_date(self) -> None:
        """Fails when a generated file (requirements.txt, ...) is stale: run `dagger generate`
        or `make generate`."""
        pipeline = self._pipeline()
        ctr = (await pipeline.toolchain()).with_env_variable("PYTHONPATH", f"{REPO}/ci/src")
        await ctr.with_exec(recipes.GENERATED_CHECK.args).sync()

    @function
    @dagger.generate
    async def generated_files(self) -> dagger.Changeset:
        """The generated files (ci.core.generated) rendered from this source, as the changes
        to apply: `dagger generate`."""
        pipeline = self._pipeline()
        files = await pipeline.generated(await pipeline.toolchain())
        return self.source.with_directory(".", files).changes(self.source)

    # --- the platform on an ephemeral K3s (ci.engine.k3s + ci.cluster) ---------------------

    def _cluster(self, pipeline: Pipeline | None = None, agents: int = 0) -> k3s.Cluster:
        return k3s.Cluster(
            pipeline=pipeline or self._pipeline(), k3s_image=self.k3s_image, agents=agents
        )

    @never_cached
    async def integration(
        self,
        repo: Repo,
        base: Base = "origin/main",
        everything: Everything = False,
        changed: Changed = None,
        revision: Revision = "unknown",
        allow_failure: Annotated[bool, Doc("return the reports even when the run fails")] = False,
        gitops: Annotated[
            bool,
            Doc("the real first install: k3s/bootstrap.sh, Argo CD syncing this commit"),
        ] = False,
        agents: Annotated[
            int, Doc("K3s agents joining the server (0-5); the run waits for every node Ready")
        ] = 0,
    ) -> dagger.Directory:
        """Every image built, K3s started with them, the platform installed as Argo CD syncs it
        (charts, hooks, values-ci.yaml; PostgreSQL on a one-instance CloudNativePG Cluster, the
        operator installed first), readiness awaited, tests/e2e through the gateway.
        With --gitops: k3s/bootstrap.sh and Argo CD itself, following this commit from a git
        server in the engine, until every Application is Synced and Healthy, then tests/e2e,
        then one preview (staging's pinned images) created and deleted as `preview` and
        `preview-destroy` do it, awaited Synced and Healthy, then gone.
        junit.xml, timings.json, and diagnostics/ on failure, in a directory. Skipped (an
        empty report) when the changes since BASE affect no service. --agents N (not with
        --gitops): N K3s agents join the server before the install."""
        if gitops and agents:
            raise ValueError("--agents is for the charts' integration, not --gitops")
        k3s_server.agent_names(agents)  # refuses a count out of range before any build
        pipeline = self._pipeline()
        plan = await pipeline.plan(repo, base, everything, changed)
        if not plan.names():
            return dag.directory().with_new_file("skipped.txt", "no service affected\n")
        cluster = self._cluster(pipeline, agents)
        if gitops:
            run = await k3s.gitops_integration(cluster)
        else:
            run = await k3s.integration(cluster, BuildLabels(revision=revision))
        if run.exit_code != 0 and not allow_failure:
            raise StageFailedError(f"integration failed:\n{run.output}")
        return run.reports

    @never_cached
    @dagger.up
    async def stack(self, revision: Revision = "unknown") -> dagger.Service:
        """The platform installed on an ephemeral K3s and kept running, its gateway on port
        80 for `localhost`: `dagger call stack up --ports 8080:80`, then http://localhost:8080."""
        return await k3s.stack(self._cluster(), BuildLabels(revision=revision))

    # --- delivery: GitOps bumps, previews, releases (ci.engine.delivery + ci.deliver) -----

    def _delivery(self) -> Delivery:
        return Delivery(pipeline=self._pipeline(), k3s_image=self.k3s_image)

    @never_cached
    async def deploy(
        self,
        env: Env,
        repo: Repo,
        repo_url: RepoUrl,
        git_token: GitToken,
        registry: Registry,
        username: Annotated[str, Doc("registry user")],
        password: Annotated[dagger.Secret, Doc("registry password or token")],
        base: Annotated[str, Doc("deploy what changed since this ref (empty: all)")] = "",
        services: Services = None,
        gitops_branch: GitopsBranch = "main",
        source_url: Annotated[str, Doc("org.opencontainers.image.source")] = "",
        branch: Annotated[
            str, Doc("the branch the source is built from: image tags <branch>-<sha7>")
        ] = "main",
        severity: Gate = Severity.HIGH,
        integration: Annotated[
            bool, Doc("the check includes the platform on an ephemeral K3s with e2e")
        ] = True,
        cosign_key: Annotated[
            dagger.Secret | None,
            Doc("cosign private key: each image is signed and attested (else bump refuses it)"),
        ] = None,
        cosign_password: Annotated[dagger.Secret | None, Doc("the cosign key's password")] = None,
        public_key: PublicKey = None,
        allow_unsigned: AllowUnsigned = False,
    ) -> str:
        """Check (lint, test, build, scan) exactly what is to be published, publish it for
        linux/amd64 and linux/arm64, sign it with its SLSA provenance, then pin the digests in
        values-ENV.yaml (one commit, pushed with rebase-retry; no commit when the digests are
        unchanged). A failed check publishes nothing; an unsigned digest is not pinned."""
        request = DeployRequest(
            repo,
            repo_url,
            env=env,
            gitops_branch=gitops_branch,
            base=base,
            services=services,
            registry=registry,
            source_url=source_url,
            build_branch=branch,
            severity=severity.value,
            integration=integration,
        )
        credentials = Credentials(
            git_token,
            username,
            password,
            cosign_key=cosign_key,
            cosign_password=cosign_password,
            public_key=public_key,
            allow_unsigned=allow_unsigned,
        )
        return await self._delivery().deploy(request, credentials)

    @never_cached
    async def promote(
        self,
        repo_url: RepoUrl,
        git_token: GitToken,
        from_env: Annotated[str, Doc("copy the digests pinned here"), Name("from")] = "staging",
        to_env: Annotated[str, Doc("into this environment"), Name("to")] = "production",
        services: Services = None,
        gitops_branch: GitopsBranch = "main",
        username: Annotated[str, Doc("registry user, to read the signatures")] = "",
        password: Annotated[
            dagger.Secret | None, Doc("registry password or token, to read the signatures")
        ] = None,
        public_key: PublicKey = None,
        allow_unsigned: AllowUnsigned = False,
    ) -> str:
        """Copy the exact image digests of one environment to another (one commit), each
        verified first against PUBLIC_KEY (its cosign signature in the registry)."""
        args = ["promote", "--clone", repo_url, "--branch", gitops_branch]
        args += ["--from", from_env, "--to", to_env]
        args += [part for name in services or [] for part in ("--service", name)]
        args += signature_args(public_key is not None, allow_unsigned)
        credentials = Credentials(
            git_token,
            username,
            password,
            public_key=public_key,
            allow_unsigned=allow_unsigned,
        )
        return await self._delivery().deliver(credentials, args)

    @never_cached
    async def rollback(
        self,
        env: Env,
        to: Annotated[str, Doc("the commit whose state ENV returns to")],
        repo_url: RepoUrl,
        git_token: GitToken,
        gitops_branch: GitopsBranch = "main",
    ) -> str:
        """Revert every bump of ENV after commit TO, as new revert commits (pushed)."""
        args = ["rollback", "--clone", repo_url, "--branch", gitops_branch, "--env", env]
        return await self._delivery().deliver(Credentials(git_token), [*args, "--to", to])

    @never_cached
    async def preview(
        self,
        branch: Annotated[str, Doc("the branch to preview")],
        repo: Repo,
        repo_url: RepoUrl,
        git_token: GitToken,
        registry: Registry,
        username: Annotated[str, Doc("registry user")],
        password: Annotated[dagger.Secret, Doc("registry password or token")],
        domain: Annotated[str, Doc("previews are served at <slug>.<domain>")],
        ttl_hours: Annotated[float, Doc("hours until preview-gc removes it")] = 72.0,
        github_token: GitHubToken = None,
        github_repo: GitHubRepo = "",
        pr: Annotated[int, Doc("pull request number for the comment")] = 0,
        gitops_branch: GitopsBranch = "main",
        base: Annotated[
            str, Doc("build what changed since the merge base with this ref; the rest reuses")
        ] = "origin/main",
    ) -> str:
        """Build and push the images of what BRANCH changed since the merge base (the other
        services keep the digests pinned in staging); after every push succeeded, write its
        preview file (namespace, host, digests, expiry) and keep the PR comment up to date."""
        request = DeployRequest(
            repo, repo_url, gitops_branch=gitops_branch, base=base, registry=registry
        )
        wanted = PreviewRequest(branch, domain, ttl_hours, github_repo, pr)
        credentials = Credentials(git_token, username, password, github_token)
        return await self._delivery().preview(request, wanted, credentials)

    @never_cached
    async def preview_destroy(
        self,
        branch: Annotated[str, Doc("the branch whose preview goes")],
        repo_url: RepoUrl,
        git_token: GitToken,
        github_token: GitHubToken = None,
        github_repo: GitHubRepo = "",
        pr: Annotated[int, Doc("pull request number for the comment")] = 0,
        gitops_branch: GitopsBranch = "main",
    ) -> str:
        """Remove BRANCH's preview file (Argo CD prunes the environment)."""
        args = ["preview-destroy", "--clone", repo_url, "--branch", gitops_branch]
        args += ["--preview-branch", branch]
        if github_repo and pr:
            args += ["--github-repo", github_repo, "--pr", str(pr)]
        credentials = Credentials(git_token, github_token=github_token)
        return await self._delivery().deliver(credentials, args)

    @never_cached
    async def preview_gc(
        self, repo_url: RepoUrl, git_token: GitToken, gitops_branch: GitopsBranch = "main"
    ) -> str:
        """Remove every expired preview file in one commit."""
        args = ["preview-gc", "--clone", repo_url, "--branch", gitops_branch]
        return await self._delivery().deliver(Credentials(git_token), args)

    @never_cached
    async def release(
        self,
        repo_url: RepoUrl,
        git_token: GitToken,
        registry_username: Annotated[str, Doc("registry user for the re-tag")] = "",
        registry_password: Annotated[dagger.Secret | None, Doc("registry password")] = None,
        mode: Annotated[ReleaseMode, Doc("how production is pinned")] = ReleaseMode.COMMIT,
        github_token: GitHubToken = None,
        github_repo: GitHubRepo = "",
        services: Services = None,
        dry_run: Annotated[bool, Doc("only print the planned versions")] = False,
        gitops_branch: GitopsBranch = "main",
        public_key: PublicKey = None,
        allow_unsigned: AllowUnsigned = False,
    ) -> str:
        """Per service: next semver from conventional commits, changelog, annotated tag; the
        staging image, its signature verified against PUBLIC_KEY first, re-tagged to the
        version (no rebuild); production pinned to it."""
        args = ["release", "--clone", repo_url, "--branch", gitops_branch]
        args += ["--mode", mode.value]
        args += [part for name in services or [] for part in ("--service", name)]
        args += ["--github-repo", github_repo] if github_repo else []
        args += ["--dry-run"] if dry_run else []
        args += signature_args(public_key is not None, allow_unsigned)
        credentials = Credentials(
            git_token,
            registry_username,
            registry_password,
            github_token,
            public_key=public_key,
            allow_unsigned=allow_unsigned,
        )
        return await self._delivery().deliver(credentials, args)


def reports_or_raise(what: str, run: TestRun, allow_failure: bool) -> dagger.Directory:
    """The reports of a test run; a failed run raises unless `allow_failure` asks for them."""
    if run.exit_code != 0 and not allow_failure:
        raise StageFailedError(f"{what} failed:\n{run.output}")
    return run.reports
