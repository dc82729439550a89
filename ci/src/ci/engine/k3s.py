"""An ephemeral K3s as a Dagger service, the run's images loaded into it, and `python -m
ci.cluster run` in the toolchain container against it (install, wait, e2e, diagnostics).

Plain (undecorated) builders wrapped by thin @function methods in `ci.main`; every decision
(install plan, readiness, diagnostics) is made by `ci.cluster` and its core, which the host tests.

Images reach K3s through its auto-import directory (/var/lib/rancher/k3s/agent/images, imported
by containerd when K3s starts), not through a registry: no registry service, no push and pull
of every layer, nothing listening that another job could reach, and the archives come straight
from `Container.as_tarball()` of images the engine has cached. `as_tarball()` leaves the image
unnamed (dagger/dagger#6999), so `ci.cluster name-archives` names each archive first.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from functools import cached_property

import dagger
from dagger import dag

from ci.core import gitops_install, k3s_server, toolversions
from ci.core.catalog import Catalog, Service
from ci.core.cluster_plan import DEFAULT_NAMESPACE
from ci.engine import toolchains
from ci.engine.stages import BuildLabels, Pipeline, Stage, StageFailedError, tail

# rancher/k3s image of K3S_VERSION in k3s/versions.env (`+` spelled `-`; a test keeps them equal),
# pinned by the digest ci.core.toolversions holds for it.
K3S_IMAGE = toolversions.pinned("rancher/k3s:v1.35.5-k3s1")
K3S_HOST = "k3s"  # the service's alias: API at https://k3s:6443, gateway at http://k3s
API_PORT = k3s_server.API_PORT
GATEWAY_PORT = 80
IMAGE_REPOSITORY = "ci.local/chat-platform"
IMAGE_TAG = "ci"
CONFIG_DIR = "/etc/rancher/k3s"
DATA_DIR = k3s_server.DATA_DIR
IMPORT_DIR = k3s_server.IMPORT_DIR
OUTPUT = "/out"
GIT_HOST = "git"  # the git server of `integration --gitops`
SERVED_URL = f"git://{GIT_HOST}/chat-platform.git"
SERVED_BRANCH = "main"  # git_server's one branch
PLATFORM = "platform"  # the check summary's row for the whole installed platform
ENTRYPOINT = "/usr/local/bin/cgroup-v2-entrypoint"
# K3s evacuates the root cgroup (v2) only when it runs as PID 1 (k3s-io/k3s#4086); in a Dagger
# service it does not, so this moves every process into a child group and delegates the
# controllers before starting it (dagger/dagger#6364).
CGROUP_V2_ENTRYPOINT = """#!/bin/sh
set -eu
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  mkdir -p /sys/fs/cgroup/init
  while read -r pid; do echo "$pid" > /sys/fs/cgroup/init/cgroup.procs 2>/dev/null || :; done \\
    < /sys/fs/cgroup/cgroup.procs
  sed -e 's/ / +/g' -e 's/^/+/' < /sys/fs/cgroup/cgroup.controllers \\
    > /sys/fs/cgroup/cgroup.subtree_control
fi
exec "$@"
"""


def image_name(service: str) -> str:
    return f"{IMAGE_REPOSITORY}/{service}:{IMAGE_TAG}"


@dataclass(frozen=True)
class Cluster:
    """One ephemeral K3s for one run (`pipeline.run` keys its kubeconfig and data volume): a
    server and `agents` agents joining it."""

    pipeline: Pipeline
    k3s_image: str = K3S_IMAGE
    agents: int = 0

    @cached_property
    def token(self) -> dagger.Secret:
        """The run's cluster token: made here, handed to K3s only as a mounted secret file."""
        return dag.set_secret(f"k3s-token-{self.pipeline.run}", secrets.token_hex(32))

    @property
    def nodes(self) -> int:
        return 1 + len(k3s_server.agent_names(self.agents))

    @property
    def kubeconfig(self) -> str:
        """Unique per run, so a file left by an earlier run is never read."""
        return f"{CONFIG_DIR}/{self.pipeline.run}.yaml"

    async def images(self, catalog: Catalog, labels: BuildLabels) -> dagger.Directory:
        """Every service's image as a named archive for the auto-import directory."""
        archives = [f"{image_name(s.name)}=/in/{s.name}.tar" for s in catalog.services]
        namer = (await self.pipeline.toolchain()).with_env_variable(
            "PYTHONPATH", f"{toolchains.REPO}/ci/src"
        )
        for service in catalog.services:
            namer = namer.with_file(f"/in/{service.name}.tar", self.archive(service, labels))
        cmd = ["python", "-m", "ci.cluster", "name-archives", "--out", "/images", "--archive"]
        return namer.with_exec([*cmd, *archives]).directory("/images")

    def archive(self, service: Service, labels: BuildLabels) -> dagger.File:
        """The image exactly as `check` builds and scans it (same build, engine-cached)."""
        version = labels.version(service.name)
        image = self.pipeline.build_service(service, version, labels.revision, labels.source_url)
        return image.as_tarball()

    def server(self, images: dagger.Directory, git: dagger.Service | None = None) -> dagger.Service:
        """K3s, privileged, its images mounted for import; Traefik off (the gateway is NGINX
        Gateway Fabric, installed by ci.cluster), the API certificate valid for `k3s`."""
        script = k3s_server.service_script(K3S_HOST, self.kubeconfig)
        base = dag.container().from_(self.k3s_image)
        if git is not None:  # Argo CD's repo-server reaches the engine's git server by name
            base = base.with_service_binding(GIT_HOST, git)
        return (
            self.k3s_container(base)
            .with_mounted_cache(CONFIG_DIR, dag.cache_volume("ci-k3s-config"))
            # One volume for every run, wiped by the script before K3s starts (not a containerd
            # store left behind per run); PRIVATE: a concurrent run gets a volume of its own.
            .with_mounted_cache(
                DATA_DIR,
                dag.cache_volume("ci-k3s-data"),
                sharing=dagger.CacheSharingMode.PRIVATE,
            )
            .with_mounted_directory(IMPORT_DIR, images)
            .with_mounted_temp("/var/lib/kubelet")
            .with_mounted_temp("/var/lib/cni")
            .with_mounted_temp("/var/log")
            .with_exposed_port(API_PORT)
            # The gateway listens only once ci.cluster installed it: no health check at start.
            .with_exposed_port(GATEWAY_PORT, experimental_skip_healthcheck=True)
            .as_service(
                args=["sh", "-c", script], use_entrypoint=True, insecure_root_capabilities=True
            )
        )

    def k3s_container(self, base: dagger.Container) -> dagger.Container:
        """What the server and the agents share: the cgroup entrypoint and the token file."""
        return (
            base.with_new_file(ENTRYPOINT, CGROUP_V2_ENTRYPOINT, permissions=0o755)
            .with_entrypoint([ENTRYPOINT])
            .with_mounted_secret(k3s_server.TOKEN_FILE, self.token)
        )

    def agent(self, server: dagger.Service, images: dagger.Directory, name: str) -> dagger.Service:
        """A K3s agent joining `server` by its alias, with the run's images for import (a pod
        may be scheduled on it) and a data volume of its own, wiped like the server's."""
        script = k3s_server.agent_script(K3S_HOST, name)
        return (
            self.k3s_container(dag.container().from_(self.k3s_image))
            .with_service_binding(K3S_HOST, server)
            .with_mounted_cache(
                DATA_DIR,
                dag.cache_volume(f"ci-k3s-{name}-data"),
                sharing=dagger.CacheSharingMode.PRIVATE,
            )
            .with_mounted_directory(IMPORT_DIR, images)
            .with_mounted_temp("/var/lib/kubelet")
            .with_mounted_temp("/var/lib/cni")
            .with_mounted_temp("/var/log")
            .as_service(
                args=["sh", "-c", script], use_entrypoint=True, insecure_root_capabilities=True
            )
        )

    async def start_agents(self, server: dagger.Service, images: dagger.Directory) -> None:
        """Nothing binds to an agent, so each is started explicitly (it starts `server`)."""
        for name in k3s_server.agent_names(self.agents):
            await self.agent(server, images, name).start()

    async def runner(self, k3s: dagger.Service) -> dagger.Container:
        """The toolchain (root venv: kubernetes, helm-python-sdk, pytest) bound to K3s."""
        return (
            (await self.pipeline.toolchain())
            .with_mounted_cache(CONFIG_DIR, dag.cache_volume("ci-k3s-config"))
            .with_service_binding(K3S_HOST, k3s)
            .with_env_variable("PYTHONPATH", f"{toolchains.REPO}/ci/src")
            # One run, one execution: never served from the cache of an earlier run.
            .with_env_variable("CI_CLUSTER_RUN", self.pipeline.run)
        )

    def run_args(self, catalog: Catalog, host: str, e2e: bool) -> list[str]:
        images = [f"{s.name}={image_name(s.name)}" for s in catalog.services]
        # --consume-kubeconfig: no cluster-admin credentials stay in the shared config volume.
        args = ["python", "-m", "ci.cluster", "run", "--kubeconfig", self.kubeconfig]
        args += ["--consume-kubeconfig"]
        args += ["--server", f"https://{K3S_HOST}:{API_PORT}", "--namespace", DEFAULT_NAMESPACE]
        args += ["--repo", toolchains.REPO, "--output", OUTPUT, "--host", host]
        args += ["--base-url", f"http://{K3S_HOST}", "--nodes", str(self.nodes)]
        args += ["--images", *images]
        return args if e2e else [*args, "--no-e2e"]


@dataclass(frozen=True)
class IntegrationRun:
    exit_code: int
    output: str
    reports: dagger.Directory


async def integration(cluster: Cluster, labels: BuildLabels) -> IntegrationRun:
    """Build every image, start K3s with them, install the platform, run the e2e suite."""
    catalog = await cluster.pipeline.catalog()
    images = await cluster.images(catalog, labels)
    k3s = cluster.server(images)
    await cluster.start_agents(k3s, images)
    # /out exists whatever happens, so `--allow-failure` always has a directory to return.
    runner = (await cluster.runner(k3s)).with_directory(OUTPUT, dag.directory())
    done = await runner.with_exec(
        [*cluster.run_args(catalog, K3S_HOST, e2e=True)], expect=dagger.ReturnType.ANY
    ).sync()
    return await integration_run(done)


async def integration_run(done: dagger.Container) -> IntegrationRun:
    """The finished runner's exit code, the tail of its output, and /out with both added."""
    code = await done.exit_code()
    output = tail(await done.stdout() + await done.stderr())
    reports = (
        done.directory(OUTPUT)
        .with_new_file("output.txt", output)
        .with_new_file("exit-code", f"{code}\n")
    )
    return IntegrationRun(code, output, reports)


def integration_stage(cluster: Cluster, labels: BuildLabels) -> tuple[str, str, Stage]:
    """The check's `platform integration` row: fails with the run's output."""

    async def run() -> str:
        done = await integration(cluster, labels)
        if done.exit_code != 0:
            raise StageFailedError(done.output)
        return ""

    return (PLATFORM, "integration", run)


async def stack(cluster: Cluster, labels: BuildLabels) -> dagger.Service:
    """The same cluster, installed (no e2e) with routes for `localhost`, left running: `up`
    exposes its gateway (port 80) to the caller."""
    catalog = await cluster.pipeline.catalog()
    k3s = await cluster.server(await cluster.images(catalog, labels)).start()
    runner = await cluster.runner(k3s)
    await runner.with_exec(cluster.run_args(catalog, "localhost", e2e=False)).sync()
    return k3s


async def served_source(source: dagger.Directory) -> dagger.Directory:
    """This commit's files with every Argo CD repoURL pointed at the engine's git server."""
    paths = [p for p in await source.glob("argocd/**") if p.endswith((".yaml", ".json"))]
    files = {path: await source.file(path).contents() for path in paths}
    for path, text in gitops_install.retarget(files, SERVED_URL).items():
        source = source.with_new_file(path, text)
    return source


def git_server(toolchain: dagger.Container) -> dagger.Service:
    """`git daemon` serving the source as one commit on main, without credentials; it takes
    pushes (receive-pack) for the run's preview file. Reachable only inside this run."""
    commit = ["git", "-c", "user.name=ci", "-c", "user.email=ci@ci.local", "commit", "-qm", "ci"]
    return (
        toolchain.with_exec(["git", "init", "-q", "-b", SERVED_BRANCH])
        .with_exec(["git", "add", "-A"])
        .with_exec(commit)
        .with_exec(["git", "clone", "-q", "--bare", toolchains.REPO, "/srv/chat-platform.git"])
        .with_exposed_port(gitops_install.GIT_PORT)
        .as_service(args=gitops_install.git_daemon_args("/srv"))
    )


async def gitops_integration(cluster: Cluster) -> IntegrationRun:
    """The first install as production gets it: K3s, the real k3s/bootstrap.sh, Argo CD
    following this commit from a git server in the engine, every Application Synced and
    Healthy (per-wave deadlines, diagnostics on expiry), tests/e2e through the gateway, then
    one preview created and deleted by the `preview`/`preview-destroy` commands (pushed to the
    git server), awaited Synced and Healthy, then gone. The images are those git pins
    (nothing is loaded into K3s); the preview runs staging's."""
    served = await served_source(cluster.pipeline.source)
    toolchain = await cluster.pipeline.toolchain(served)
    git = git_server(toolchain)
    k3s = cluster.server(dag.directory(), git)
    pins = gitops_install.pinned_images(await cluster.pipeline.pinned_images())
    preview = gitops_install.PreviewRun(SERVED_URL, SERVED_BRANCH, pins)
    script = gitops_install.runner_script(
        cluster.kubeconfig,
        f"https://{K3S_HOST}:{API_PORT}",
        f"http://{K3S_HOST}",
        OUTPUT,
        preview,
    )
    runner = (
        toolchain.with_exec(["sh", "-c", "apt-get update -qq && apt-get install -y -qq curl"])
        .with_mounted_cache(CONFIG_DIR, dag.cache_volume("ci-k3s-config"))
        .with_service_binding(K3S_HOST, k3s)
        .with_service_binding(GIT_HOST, git)
        .with_env_variable("PYTHONPATH", f"{toolchains.REPO}/ci/src")
        .with_env_variable("CI_CLUSTER_RUN", cluster.pipeline.run)
        .with_directory(OUTPUT, dag.directory())
    )
    done = await runner.with_exec(["sh", "-c", script], expect=dagger.ReturnType.ANY).sync()
    return await integration_run(done)
