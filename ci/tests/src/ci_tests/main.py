"""One test function per capability of the ci module; `all` runs every one concurrently.

These call the `ci` dependency through the bindings the engine generates (`dag.ci()`), so they
only type-check inside the engine; on the host they are linted by ruff only.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable

import anyio
from dagger import dag, function, object_type

PYTHON_SERVICE = "auth"
# Needs PostgreSQL too: run beside auth, it shows each test run gets its own database.
SECOND_PYTHON_SERVICE = "backend"
NODE_SERVICE = "frontend"
SHA = "0123456789abcdef0123456789abcdef01234567"
PROBE_IMAGE = "python:3.12.8-slim-bookworm"
# GET /api/auth/health through the stack's gateway with the host its routes answer to.
PROBE = (
    "import urllib.request as u; r = u.Request('http://stack/api/auth/health', "
    "headers={'Host': 'localhost'}); print(u.urlopen(r, timeout=30).read().decode())"
)
SCAN_REPORTS = {
    "trivy.json",
    "trivy.sarif",
    "sbom.cdx.json",
    "hadolint.json",
    "hadolint.sarif",
    "verdict.json",
}


# Every test is `cache="never"`: a test served from the engine's 7-day function cache (the
# tests take no arguments, so nothing in their cache key follows the ci module's source)
# would pass without having run.


class CapabilityError(AssertionError):
    """A capability of the ci module did not do what it promises."""


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CapabilityError(message)


@object_type
class CiTests:
    @function(cache="never")
    async def services(self) -> None:
        """The catalog lists the python and node services with their schema fields."""
        catalog = json.loads(await dag.ci().services())
        names = {s["name"] for s in catalog["services"]}
        expect({PYTHON_SERVICE, NODE_SERVICE} <= names, f"catalog misses services: {names}")
        expect("servicekit" in catalog["libraries"], "servicekit is not listed as a library")

    @function(cache="never")
    async def plan(self) -> None:
        """A plan against HEAD has no changes, lists every service as unaffected."""
        plan = json.loads(await dag.ci().plan(base="HEAD"))
        catalog = json.loads(await dag.ci().services())
        expect(plan["services"] == [], f"no change should affect nothing: {plan['services']}")
        expect(
            sorted(plan["unaffected"]) == sorted(s["name"] for s in catalog["services"]),
            "unaffected services differ from the catalog",
        )

    @function(cache="never")
    async def version(self) -> None:
        """main -> main-<sha7>; a release tag -> its version."""
        main = json.loads(await dag.ci().version(service=PYTHON_SERVICE, sha=SHA, branch="main"))
        expect(main["tags"] == ["main-0123456"], f"main build tags: {main['tags']}")
        tagged = json.loads(
            await dag.ci().version(service=PYTHON_SERVICE, sha=SHA, tags=["auth-v1.2.3"])
        )
        expect(tagged["version"] == "1.2.3", f"release version: {tagged['version']}")

    @function(cache="never")
    async def lint(self) -> None:
        """Lint passes for a python and a node service (raises on findings)."""
        await dag.ci().lint(service=PYTHON_SERVICE)
        await dag.ci().lint(service=NODE_SERVICE)

    @function(cache="never")
    async def test(self) -> None:
        """Tests of two PostgreSQL services and a node one at once, each with backing services
        of its own; every run returns JUnit XML."""

        async def one(service: str) -> None:
            reports = dag.ci().test(service=service)
            entries = await reports.entries()
            expect("junit.xml" in entries, f"{service}: no junit.xml in {entries}")
            junit = await reports.file("junit.xml").contents()
            expect("<testsuite" in junit, f"{service}: junit.xml is not JUnit XML")

        async with anyio.create_task_group() as group:
            for service in (PYTHON_SERVICE, SECOND_PYTHON_SERVICE, NODE_SERVICE):
                group.start_soon(one, service)

    @function(cache="never")
    async def test_repo(self) -> None:
        """The repository suite (tests/, servicekit) passes in the toolchain container."""
        reports = dag.ci().test_repo()
        expect((await reports.file("exit-code").contents()).strip() == "0", "test-repo failed")
        junit = await reports.file("junit.xml").contents()
        expect("<testsuite" in junit, "test-repo: junit.xml is not JUnit XML")

    @function(cache="never")
    async def build(self) -> None:
        """The image carries the version labels and runs as a non-root user."""
        image = dag.ci().build(service=PYTHON_SERVICE, version="1.2.3", revision=SHA)
        version = await image.label("org.opencontainers.image.version")
        expect(version == "1.2.3", f"version label: {version!r}")
        revision = await image.label("org.opencontainers.image.revision")
        expect(revision == SHA, f"revision label: {revision!r}")
        user = await image.user()
        expect(user not in ("", "root", "0", "0:0"), f"image runs as root: {user!r}")

    @function(cache="never")
    async def scan(self) -> None:
        """Two scans at once share one DB download; reports (JSON, SARIF, SBOM, verdict) come
        back even when the gate would fail."""

        async def one(service: str) -> None:
            reports = dag.ci().scan(service=service, severity="CRITICAL", allow_failure=True)
            entries = set(await reports.entries())
            expect(entries >= SCAN_REPORTS, f"{service}: missing {SCAN_REPORTS - entries}")
            verdict = json.loads(await reports.file("verdict.json").contents())
            expect(verdict["threshold"] == "CRITICAL", f"threshold: {verdict['threshold']}")
            sarif = json.loads(await reports.file("trivy.sarif").contents())
            expect("runs" in sarif, f"{service}: trivy.sarif is not SARIF")

        async with anyio.create_task_group() as group:
            for service in (PYTHON_SERVICE, SECOND_PYTHON_SERVICE):
                group.start_soon(one, service)

    @function(cache="never")
    async def publish(self) -> None:
        """Pushes to the ephemeral public registry ttl.sh and returns digests."""
        namespace = f"ttl.sh/chat-ci-{uuid.uuid4().hex[:12]}"
        refs = await dag.ci().publish(
            service=PYTHON_SERVICE,
            registry=namespace,
            username="ci-tests",
            password=dag.set_secret("ttl-sh-password", "ttl.sh needs no password"),
            tags=["1h"],
        )
        expect(len(refs) == 1, f"expected one reference: {refs}")
        expect(refs[0].startswith(f"{namespace}/{PYTHON_SERVICE}:1h@sha256:"), f"ref: {refs[0]}")

    @function(cache="never")
    async def check(self) -> None:
        """With no changes, check selects nothing and says so."""
        text = await dag.ci().check(base="HEAD")
        expect("no services selected" in text, f"unexpected summary: {text}")

    @function(cache="never")
    async def integration(self) -> None:
        """K3s with every image, the platform installed, e2e through the gateway: JUnit XML
        and every timing of the run in the reports."""
        reports = dag.ci().integration(changed=[f"services/{PYTHON_SERVICE}/service.yaml"])
        entries = set(await reports.entries())
        expect({"junit.xml", "timings.json", "exit-code"} <= entries, f"reports: {entries}")
        expect("diagnostics" not in {e.rstrip("/") for e in entries}, "a passing run diagnosed")
        timings = json.loads(await reports.file("timings.json").contents())
        wanted = {
            "cluster ready",
            "images loaded",
            "gateway installed",
            "installed",
            "ready",
            "e2e",
        }
        expect(wanted <= set(timings), f"timings.json misses {wanted - set(timings)}")

    @function(cache="never")
    async def integration_with_agent(self) -> None:
        """The same run on a server and one agent: the run waited for both nodes Ready."""
        reports = dag.ci().integration(
            changed=[f"services/{PYTHON_SERVICE}/service.yaml"], agents=1
        )
        code = (await reports.file("exit-code").contents()).strip()
        expect(code == "0", f"exit code {code}: {await reports.file('output.txt').contents()}")
        timings = json.loads(await reports.file("timings.json").contents())
        expect("cluster ready" in timings, f"timings.json: {sorted(timings)}")

    @function(cache="never")
    async def stack(self) -> None:
        """The kept cluster answers through its gateway for localhost."""
        gateway = dag.ci().stack()
        probe = (
            dag.container()
            .from_(PROBE_IMAGE)
            .with_service_binding("stack", gateway)
            .with_env_variable("RUN", uuid.uuid4().hex)
            .with_exec(["python", "-c", PROBE])
        )
        answer = await probe.stdout()
        expect('"ok"' in answer or "ok" in answer, f"auth health through the gateway: {answer}")

    @function(cache="never")
    async def all(self) -> None:
        """Every test above, concurrently; raises listing every failure."""
        tests: dict[str, Callable[[], Awaitable[None]]] = {
            "services": self.services,
            "plan": self.plan,
            "version": self.version,
            "lint": self.lint,
            "test": self.test,
            "test_repo": self.test_repo,
            "build": self.build,
            "scan": self.scan,
            "publish": self.publish,
            "check": self.check,
            "integration": self.integration,
            "integration_with_agent": self.integration_with_agent,
            "stack": self.stack,
        }
        failures: list[str] = []

        async def run(name: str, test: Callable[[], Awaitable[None]]) -> None:
            try:
                await test()
            except Exception as exc:
                failures.append(f"{name}: {exc}")

        async with anyio.create_task_group() as group:
            for name, test in tests.items():
                group.start_soon(run, name, test)
        if failures:
            raise CapabilityError("\n".join(sorted(failures)))
