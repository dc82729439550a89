"""Each Python service runs from exactly what its image ships (the artefact tier).

A clean venv holds only what the service's Dockerfile installs (its requirements.txt, hashed, no
dependencies resolved), the source trees it copies sit on its PYTHONPATH, and nothing of the dev
venv is reachable. From that closure, as the Dockerfile's USER: every Job container the charts
render from the image runs to completion (migrations, and the wait for the database), the
Dockerfile's CMD and every chart server answer their liveness path, and every worker passes its
exec probes while it runs. A module an image lacks fails here, whichever command imports it.
Every process exports traces to a real OTLP receiver, so the servers' probes must arrive as
server spans: the tracing instrumentation is in the closure and works there too.

The venvs are cached by what their build depends on (tests/imagekit/closure.py); the first run
after a lock change installs from PyPI (pip's cache helps).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ci.localapp.process import ManagedProcess
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from imagekit.closure import build_closure, cache_root, run_directory
from imagekit.launch import Launcher, Secrets, run_job, start_server, start_worker
from imagekit.recipe import read_recipe
from imagekit.workloads import image_runs
from observability.otlp import OtlpReceiver
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
SERVICES = sorted(
    p.parent.name
    for p in REPO.glob("services/*/Dockerfile")
    if p.with_name("requirements.txt").exists()
)
START_TIMEOUT = 120.0


def stand_in_secrets(service: str, database_url: str, redis_url: str) -> Secrets:
    """What the cluster's Secrets hold, for this service (charts/*/values.yaml secretEnv)."""
    key = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return Secrets(
        values={
            (f"{service}-database", "url"): database_url,
            (f"{service}-redis", "url"): redis_url,
            ("data-processor-django", "secret-key"): secrets.token_urlsafe(50),
            ("backend-ai-client", "secret"): secrets.token_urlsafe(32),
            ("auth-service-clients", "clients"): json.dumps({"backend": secrets.token_urlsafe(32)}),
        },
        files={"auth-signing-keys": {"closure-test.pem": key}},
    )


@pytest.fixture
def started() -> Iterator[list[ManagedProcess]]:
    processes: list[ManagedProcess] = []
    yield processes
    for process in processes:
        process.stop()


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    with receiver.server:
        yield receiver


def until_traced(receiver: OtlpReceiver, service: str) -> None:
    """Wait for a server span of `service` (its probes were answered, the batch is exported)."""
    deadline = time.monotonic() + START_TIMEOUT
    while not any(s.service == service and s.kind == "SERVER" for s in receiver.snapshot()):
        assert time.monotonic() < deadline, f"{service}: no server span exported: {receiver.spans}"
        time.sleep(0.2)


@pytest.mark.parametrize("service", SERVICES)
def test_image_runs_its_cmd_and_every_chart_command_from_its_own_closure(
    service: str,
    make_database: Callable[[], str],
    redis_url: str,
    started: list[ManagedProcess],
    receiver: OtlpReceiver,
) -> None:
    recipe = read_recipe(REPO / "services" / service / "Dockerfile")
    runs = image_runs(service)
    servers = [run for run in runs if run.kind == "server"]
    assert servers, f"charts/{service}: no container of the image with a liveness httpGet"
    with run_directory(cache_root(REPO)) as work:
        closure = build_closure(recipe, REPO, cache_root(REPO), work)
        secrets = stand_in_secrets(service, make_database(), redis_url)
        tracing = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.server.url,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
        launcher = Launcher(closure, secrets, work, extra_env=tracing)
        for job in (run for run in runs if run.kind == "job"):
            run_job(launcher, job, START_TIMEOUT)
        # The Dockerfile's CMD with the main server's environment, then the charts' commands.
        started.append(start_server(launcher, "CMD", recipe.runtime.cmd, servers[0], START_TIMEOUT))
        for server in servers:
            if server.argv != recipe.runtime.cmd:
                started.append(
                    start_server(launcher, server.name, server.argv, server, START_TIMEOUT)
                )
        for worker in (run for run in runs if run.kind == "worker"):
            started.append(start_worker(launcher, worker, START_TIMEOUT))
        until_traced(receiver, service)


# PEP 508 marker variables as the given interpreter sees them (packaging's default_environment).
MARKER_ENVIRONMENT = """
import json, os, platform, sys
print(json.dumps({
    "implementation_name": sys.implementation.name,
    "implementation_version": platform.python_version(),
    "os_name": os.name,
    "platform_machine": platform.machine(),
    "platform_release": platform.release(),
    "platform_system": platform.system(),
    "platform_version": platform.version(),
    "python_full_version": platform.python_version(),
    "platform_python_implementation": platform.python_implementation(),
    "python_version": ".".join(platform.python_version_tuple()[:2]),
    "sys_platform": sys.platform,
}))
"""


def marker_environment(python: Path) -> dict[str, str]:
    done = subprocess.run(
        [str(python), "-c", MARKER_ENVIRONMENT], capture_output=True, text=True, check=True
    )
    environment: dict[str, str] = json.loads(done.stdout)
    return environment


def test_the_closure_holds_nothing_but_the_requirements(tmp_path: Path) -> None:
    # The venv is the Dockerfile's: no pip (uninstalled at the end of the build), no pytest.
    recipe = read_recipe(REPO / "services" / "media-storage" / "Dockerfile")
    with run_directory(cache_root(REPO)) as work:
        closure = build_closure(recipe, REPO, cache_root(REPO), work)
        venv = closure.runtime_paths()["/opt/venv"]
        installed = {
            p.name.split("-")[0].lower() for p in venv.glob("lib/python*/site-packages/*.dist-info")
        }
        lines = (REPO / "services/media-storage/requirements.txt").read_text().splitlines()
        requirements = [
            Requirement(line.rstrip(" \\"))
            for line in lines
            if "==" in line and not line.startswith(("#", " "))
        ]
        # What pip installed for the closure's interpreter: markers (`sys_platform == 'win32'`,
        # `python_full_version < '3.11.3'`) are evaluated in its environment, not pytest's.
        environment = marker_environment(venv / "bin" / "python")
        pinned = {
            r.name.lower().replace("-", "_")
            for r in requirements
            if r.marker is None or r.marker.evaluate(environment)
        }
        assert installed == pinned, installed ^ pinned
