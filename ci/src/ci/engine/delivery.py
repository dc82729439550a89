"""Delivery as containers: publish images, then run `python -m ci.deliver` (git, registry API,
GitHub API) in the toolchain container.

Plain (undecorated) builders, wrapped by thin @function methods in `ci.main`. Every decision is
made by the pure core behind `ci.deliver` (tested on the host against real git, a real registry
and a local GitHub API server); this layer only composes containers and passes secrets.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass

import anyio
import dagger
from dagger import dag

from ci.core import buildplan, provenance, recipes, toolversions
from ci.core.affected import Plan
from ci.core.gitfacts import GitFacts
from ci.core.versions import build_version
from ci.engine import k3s, signing, toolchains
from ci.engine.stages import REPORTS, BuildLabels, Pipeline, StageFailedError

# The repository as it sits in the toolchain container; the delivery core is imported from here.
CI_SRC = f"{toolchains.REPO}/ci/src"
PUBLIC_KEY = "/keys/cosign.pub"


def image_argument(service: str, published_ref: str) -> str:
    """`--image` value from publish's `registry/ns/svc:tag@sha256:...`."""
    name, sep, digest = published_ref.partition("@")
    if not sep:
        raise ValueError(f"publish returned {published_ref!r} without a digest")
    tag = name.rsplit(":", 1)[-1]
    return f"{service}={tag}@{digest}"


@dataclass(frozen=True)
class Credentials:
    """Who may push where; every value that is a secret stays a dagger.Secret."""

    git_token: dagger.Secret
    registry_username: str = ""
    registry_password: dagger.Secret | None = None
    github_token: dagger.Secret | None = None
    # cosign's key pair (ci.engine.signing): without it nothing is signed, and `bump` refuses
    # the unsigned digests (ci.core.signing).
    cosign_key: dagger.Secret | None = None
    cosign_password: dagger.Secret | None = None
    # cosign.pub: bump and promote verify every digest they pin against it (ci.core.signing).
    public_key: dagger.File | None = None
    allow_unsigned: bool = False


@dataclass(frozen=True)
class Delivery:
    pipeline: Pipeline
    k3s_image: str = k3s.K3S_IMAGE  # the check's integration stage

    async def runner(self, credentials: Credentials) -> dagger.Container:
        """The toolchain container (git, and the delivery core's libraries at the versions
        uv.lock pins, installed hashed by `uv sync --frozen`), with the secrets as environment
        variables."""
        ctr = (
            (await self.pipeline.toolchain())
            .with_env_variable("PYTHONPATH", CI_SRC)
            .with_workdir("/work")
            .with_secret_variable("GIT_TOKEN", credentials.git_token)
        )
        if credentials.registry_username:
            ctr = ctr.with_env_variable("REGISTRY_USERNAME", credentials.registry_username)
        if credentials.registry_password is not None:
            ctr = ctr.with_secret_variable("REGISTRY_PASSWORD", credentials.registry_password)
        if credentials.github_token is not None:
            ctr = ctr.with_secret_variable("GITHUB_TOKEN", credentials.github_token)
        if credentials.public_key is not None:
            ctr = ctr.with_file(PUBLIC_KEY, credentials.public_key)
        return ctr

    async def deliver(self, credentials: Credentials, args: list[str]) -> str:
        """Run one `ci.deliver` command; its JSON result is the function's output.

        The run marker defeats the engine's exec cache: a push must happen every time.
        """
        return await (
            (await self.runner(credentials))
            .with_env_variable("CI_DELIVER_RUN", str(time.time_ns()))
            .with_exec(["python", "-m", "ci.deliver", *args])
            .stdout()
        )

    async def publish_services(
        self,
        names: list[str],
        sha: str,
        branch: str,
        registry: str,
        username: str,
        password: dagger.Secret,
        source_url: str,
        credentials: Credentials | None = None,
    ) -> dict[str, str]:
        """Build (one image per platform of ci.core.toolversions.IMAGE_PLATFORMS) and push each
        service concurrently, signed with its provenance when `credentials` hold cosign's key;
        service -> `--image` value."""
        catalog = await self.pipeline.catalog()
        published: dict[str, str] = {}
        signer = await self.signer(credentials, registry, username, password)

        async def one(name: str) -> None:
            version = build_version(name, GitFacts(sha=sha, branch=branch))
            started = dt.datetime.now(tz=dt.UTC)
            variants = [
                self.pipeline.build_service(
                    catalog.get(name), version.version, sha, source_url, platform
                )
                for platform in toolversions.IMAGE_PLATFORMS
            ]
            refs = await self.pipeline.publish(
                dag.container(), name, registry, username, password, version.tags, variants
            )
            published[name] = image_argument(name, refs[0])
            if signer is not None:
                dockerfile = recipes.dockerfile(catalog.get(name))
                text = await self.pipeline.source.file(dockerfile).contents()
                build = provenance.ImageBuild(
                    image=refs[0].split("@")[0].rsplit(":", 1)[0],
                    digest=refs[0].split("@", 1)[1],
                    service=name,
                    dockerfile=dockerfile,
                    source_repository=source_url,
                    revision=sha,
                    version=version.version,
                    platforms=toolversions.IMAGE_PLATFORMS,
                    base_images=provenance.base_images(text, dockerfile),
                    builder_id=f"{source_url}#dagger-deploy",
                    invocation_id=f"{sha}-{time.time_ns()}",
                    started=started,
                    finished=dt.datetime.now(tz=dt.UTC),
                    build_args={"VERSION": version.version, "REVISION": sha},
                )
                predicate = json.dumps(provenance.predicate(build))
                # The CycloneDX SBOM the scan stage makes, of the first platform's image.
                sbom = self.pipeline.trivy(variants[0]).file(f"{REPORTS}/sbom.cdx.json")
                await signing.sign_and_attest(*signer, refs[0], predicate, sbom)

        async with anyio.create_task_group() as group:
            for name in names:
                group.start_soon(one, name)
        return published

    async def signer(
        self,
        credentials: Credentials | None,
        registry: str,
        username: str,
        password: dagger.Secret,
    ) -> tuple[dagger.Secret, dagger.Secret, dagger.Secret] | None:
        """(registry config, key, key password) for ci.engine.signing, when a key was given."""
        if credentials is None or credentials.cosign_key is None:
            return None
        key_password = _required(credentials.cosign_password, "cosign-password")
        host = recipes.registry_host(registry)
        config = await signing.registry_config(host, username, password)
        return config, credentials.cosign_key, key_password

    async def targets(
        self, repo: dagger.Directory, base: str, services: list[str] | None
    ) -> tuple[Plan, str]:
        """(plan of the services to ship, head sha): the named ones, or those affected since
        `base`, or all of them when `base` is empty."""
        plan = await self.pipeline.plan(repo, base or "HEAD", everything=not base)
        head = plan.head or await self.head(repo)
        if services:
            plan = buildplan.requested_plan(plan, await self.pipeline.catalog(), services)
        return plan, head

    async def head(self, repo: dagger.Directory) -> str:
        git = toolchains.git(repo, self.pipeline.images)
        return (await git.with_exec(["git", "rev-parse", "HEAD"]).stdout()).strip()

    async def check_before_publish(self, plan: Plan, sha: str, request: DeployRequest) -> None:
        """Lint, test, build and scan exactly what is about to be published, built with the
        labels it is published with (the engine builds each image once for both)."""
        versions = {
            name: build_version(name, GitFacts(sha=sha, branch=request.build_branch)).version
            for name in plan.names()
        }
        labels = BuildLabels(revision=sha, source_url=request.source_url, versions=versions)
        cluster = k3s.Cluster(pipeline=self.pipeline, k3s_image=self.k3s_image)
        also = [k3s.integration_stage(cluster, labels)] if request.integration else []
        text, passed = await self.pipeline.check(plan, request.repo, request.severity, labels, also)
        if not passed:
            raise StageFailedError(f"deploy: nothing published, the check failed:\n{text}")

    async def deploy(self, request: DeployRequest, credentials: Credentials) -> str:
        """Check, publish the affected services, then pin their digests in values-<env>.yaml."""
        plan, sha = await self.targets(request.repo, request.base, request.services)
        if not plan.names():
            return '{"commit": null, "changes": [], "reason": "no service affected"}'
        password = _required(credentials.registry_password, "password")
        await self.check_before_publish(plan, sha, request)
        images = await self.publish_services(
            plan.names(),
            sha,
            request.build_branch,
            request.registry,
            credentials.registry_username,
            password,
            request.source_url,
            credentials,
        )
        args = ["bump", *request.git_args(), "--env", request.env, "--source", sha]
        args += signature_args(credentials.public_key is not None, credentials.allow_unsigned)
        return await self.deliver(credentials, args + image_args(images))

    async def pinned_images(self) -> dict[str, str | None]:
        return await self.pipeline.pinned_images()

    async def preview(
        self, request: DeployRequest, preview: PreviewRequest, credentials: Credentials
    ) -> str:
        """Publish what the branch changed since the merge base (the rest keeps the digests
        pinned in staging); only when every push succeeded, write the preview."""
        plan = await self.pipeline.plan(request.repo, request.base, everything=False)
        sha = plan.head or await self.head(request.repo)
        decision = buildplan.preview_build(
            plan, await self.pipeline.catalog(), await self.pinned_images()
        )
        password = _required(credentials.registry_password, "password")
        built = await self.publish_services(
            decision.build,
            sha,
            preview.branch,
            request.registry,
            credentials.registry_username,
            password,
            request.source_url,
        )
        images = {name: f"{name}={ref}" for name, ref in decision.reuse.items()} | built
        args = [
            "preview",
            *request.git_args(),
            "--preview-branch",
            preview.branch,
            "--domain",
            preview.domain,
            "--ttl-hours",
            str(preview.ttl_hours),
            *(
                ["--github-repo", preview.github_repo, "--pr", str(preview.pr)]
                if preview.github_repo and preview.pr
                else []
            ),
        ]
        return await self.deliver(credentials, args + image_args(images))


def _required(secret: dagger.Secret | None, name: str) -> dagger.Secret:
    if secret is None:
        raise ValueError(f"--{name} is required to publish images")
    return secret


def signature_args(public_key: bool, allow_unsigned: bool) -> list[str]:
    """How bump/promote check signatures: against the mounted key, and/or let through loudly.
    Neither: ci.deliver refuses (exit 2), nothing is pinned unverified by default."""
    return (["--public-key", PUBLIC_KEY] if public_key else []) + (
        ["--allow-unsigned"] if allow_unsigned else []
    )


def image_args(images: dict[str, str]) -> list[str]:
    return [part for name in sorted(images) for part in ("--image", images[name])]


@dataclass(frozen=True)
class DeployRequest:
    """Where the source, the images and the GitOps commits go."""

    repo: dagger.Directory
    repo_url: str
    env: str = ""
    gitops_branch: str = "main"
    base: str = ""
    services: list[str] | None = None
    registry: str = ""
    source_url: str = ""
    # The branch the images are built from: their tags are `<branch>-<sha7>` (main-<sha7>).
    # Not the GitOps branch, which only says where the values commits go.
    build_branch: str = "main"
    severity: str = "HIGH"
    # The platform installed on an ephemeral K3s with e2e, beside the check's other stages.
    integration: bool = True

    def git_args(self) -> list[str]:
        return ["--clone", self.repo_url, "--branch", self.gitops_branch]


@dataclass(frozen=True)
class PreviewRequest:
    branch: str
    domain: str
    ttl_hours: float = 72.0
    github_repo: str = ""
    pr: int = 0
