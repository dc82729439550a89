"""The preview of `integration --gitops`, as the runner makes it: `python -m ci.deliver` with the
arguments ci.core.gitops_install builds, pushing through the engine's git server command (`git
daemon`, ci.core.gitops_install.git_daemon_args) to a bare repository seeded with this
repository's charts, catalog and preview folder; staging's pinned images read as the engine reads
them (ci.core.buildplan)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml
from ci.core import buildplan
from ci.core import gitops_install as gi
from ci.core.catalog import load_catalog
from ci.core.gitops import ImageRef, set_image, values_path
from ci.core.preview import PREVIEW_DIR
from delivery.helpers import configure_identity, git
from harness.lifetime import bound_to_parent
from harness.servers import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
CI_SRC = ROOT / "ci" / "src"
PINNED = {
    "auth": ImageRef("main-1a2b3c4", "sha256:" + "a" * 64),
    "backend": ImageRef("main-1a2b3c4", "sha256:" + "b" * 64),
}


def served_repository(tmp_path: Path) -> Path:
    """A bare repository on main holding the real charts' values files, services/*/service.yaml
    and argocd/previews/, with staging pins for PINNED (today's staging pins no digest)."""
    seed = tmp_path / "seed"
    # servicekit's pyproject.toml: the library folder the catalog's `uses` names.
    catalog = [*ROOT.glob("services/*/service.yaml"), ROOT / "services/servicekit/pyproject.toml"]
    for path in [*ROOT.glob("charts/*/values*.yaml"), *catalog]:
        target = seed / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    shutil.copytree(ROOT / PREVIEW_DIR, seed / PREVIEW_DIR)
    for service, ref in PINNED.items():
        set_image(values_path(seed, service, "staging"), service, "staging", ref)
    git(tmp_path, "init", "--quiet", "--initial-branch=main", str(seed))
    configure_identity(seed)
    git(seed, "add", ".")
    git(seed, "commit", "--quiet", "-m", "served commit")
    bare = tmp_path / "served.git"
    git(tmp_path, "clone", "--quiet", "--bare", str(seed), str(bare))
    return bare


def staging_pins(repo: Path) -> dict[str, str | None]:
    """As Pipeline.pinned_images reads them from the engine's source directory."""
    pins: dict[str, str | None] = {}
    for name in load_catalog(repo).names():
        path = buildplan.values_file(name)
        pins[name] = buildplan.pinned_image((repo / path).read_text(), path)
    return pins


def deliver(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(CI_SRC)}
    env.pop("GIT_TOKEN", None)
    return subprocess.run(
        [sys.executable, "-m", "ci.deliver", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def served_file(bare: Path, path: str) -> str | None:
    done = subprocess.run(
        ["git", "--git-dir", str(bare), "show", f"main:{path}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.stdout if done.returncode == 0 else None


@contextmanager
def git_server(base: Path) -> Iterator[str]:
    """The engine's git server command (ci.core.gitops_install) on a free port; its URL."""
    port = free_port()
    args = gi.git_daemon_args(str(base), port)
    with (base / "daemon.log").open("ab") as log:
        daemon = subprocess.Popen(bound_to_parent(args), stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port)
        yield f"git://127.0.0.1:{port}"
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)


def test_the_run_s_preview_is_written_with_staging_s_images_then_removed(tmp_path: Path) -> None:
    bare = served_repository(tmp_path)
    seed = tmp_path / "seed"
    with git_server(tmp_path) as url:
        run = gi.PreviewRun(f"{url}/{bare.name}", "main", gi.pinned_images(staging_pins(seed)))
        created = deliver(run.create_args())
        written = served_file(bare, f"{PREVIEW_DIR}/{run.slug}.yaml")
        destroyed = deliver(run.destroy_args())

    assert created.returncode == 0, created.stderr
    preview = yaml.safe_load(written or "")
    assert preview["namespace"] == run.namespace
    assert preview["revision"] == "main"  # the charts at the served branch
    assert preview["host"] == f"{run.slug}.{gi.PREVIEW_DOMAIN}"
    assert preview["images"] == {
        name: {"tag": ref.tag, "digest": ref.digest} for name, ref in PINNED.items()
    }
    assert destroyed.returncode == 0, destroyed.stderr
    assert served_file(bare, f"{PREVIEW_DIR}/{run.slug}.yaml") is None
    assert served_file(bare, f"{PREVIEW_DIR}/README.md") is not None
