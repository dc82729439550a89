"""Synthetic git repositories for the benchmarks, built with git itself (fast-import for bulk)."""

from __future__ import annotations

import subprocess
from pathlib import Path

SERVICE_YAML = """\
name: {name}
kind: python
description: synthetic service {name}
port: 8000
health: /health
ready: /ready
route: /api/{name}
needs: [postgres, redis]
uses: [kit]
run: [uvicorn, "{name}.main:app"]
"""
VALUES = """\
# Machine-edited by the delivery pipeline: only image.tag and image.digest change.
image:
  repository: registry.example.test/{name}
  tag: "initial"
  digest: ""

replicas: 1
"""
IDENTITY = ("-c", "user.name=bench", "-c", "user.email=bench@example.test")


def git(cwd: Path, *args: str, stdin: bytes | None = None) -> str:
    done = subprocess.run(  # noqa: S603 - git with our own arguments
        ["git", *IDENTITY, *args],  # noqa: S607 - git from PATH, like the delivery code
        cwd=cwd,
        input=stdin,
        capture_output=True,
        check=True,
        timeout=600,
    )
    return done.stdout.decode().strip()


def monorepo(root: Path, services: int) -> Path:
    """A work tree shaped like this repository: `services` services using one library, charts."""
    root.mkdir(parents=True)
    git(root, "init", "--quiet", "--initial-branch=main")
    (root / "services" / "kit").mkdir(parents=True)
    (root / "services" / "kit" / "kit.py").write_text("")
    (root / "charts" / "lib").mkdir(parents=True)
    (root / "charts" / "lib" / "Chart.yaml").write_text(
        "apiVersion: v2\nname: lib\ntype: library\n"
    )
    for i in range(services):
        name = f"svc{i:04d}"
        (root / "services" / name).mkdir()
        (root / "services" / name / "service.yaml").write_text(SERVICE_YAML.format(name=name))
        (root / "charts" / name).mkdir()
        for env in ("staging", "production"):
            (root / "charts" / name / f"values-{env}.yaml").write_text(VALUES.format(name=name))
    git(root, "add", ".")
    git(root, "commit", "--quiet", "-m", "chore: synthetic monorepo")
    return root


def commit_many_paths(root: Path, services: int, paths_per_service: int) -> str:
    """A commit on top of HEAD adding `paths_per_service` files under every service (not
    checked out: fast-import writes objects only). Returns its sha."""
    head = git(root, "rev-parse", "HEAD")
    lines = [
        "blob",
        "mark :1",
        "data 2",
        "x",
        "",
        "commit refs/heads/change",
        "committer bench <bench@example.test> 1700000000 +0000",
        "data 12",
        "feat: bulk",
        "",
        f"from {head}",
    ]
    for i in range(services):
        lines += [f"M 100644 :1 services/svc{i:04d}/src/f{j}.py" for j in range(paths_per_service)]
    git(root, "fast-import", "--quiet", stdin=("\n".join(lines) + "\n").encode())
    return git(root, "rev-parse", "refs/heads/change")


def bare_remote(parent: Path, services: int) -> Path:
    """A bare remote holding a monorepo of `services` services on main."""
    seed = monorepo(parent / "seed", services)
    bare = parent / "remote.git"
    git(parent, "clone", "--quiet", "--bare", str(seed), str(bare))
    return bare


def clones(bare: Path, parent: Path, count: int) -> list[Path]:
    """`count` clones of `bare` (local clones hard-link objects: cheap)."""
    made = []
    for i in range(count):
        path = parent / f"clone{i:03d}"
        git(parent, "clone", "--quiet", str(bare), str(path))
        git(path, "config", "user.name", f"pipeline{i}")
        git(path, "config", "user.email", "bench@example.test")
        made.append(path)
    return made
