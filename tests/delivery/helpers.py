"""Real git repositories for the delivery tests: a bare remote plus as many clones as needed."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

SERVICES = [f"svc{i}" for i in range(10)]

VALUES_TEMPLATE = """\
# Machine-edited by the delivery pipeline: only image.tag and image.digest change.
replicaCount: 1   # keep one replica in {env}

image:
  repository: registry.example.test/{service}  # where the pipeline publishes
  tag: "initial"
  # The digest is what actually runs; the tag is for humans.
  digest: {digest}

resources:
  limits:
    memory: 256Mi
"""


def digest_of(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def git(cwd: Path, *args: str, input_text: str | None = None) -> str:
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
        input=input_text,
    ).stdout.strip()


def configure_identity(path: Path, name: str = "Test Bot") -> None:
    git(path, "config", "user.name", name)
    git(path, "config", "user.email", "bot@example.test")
    git(path, "config", "commit.gpgsign", "false")


def seed_tree(root: Path, services: list[str]) -> None:
    for service in services:
        chart = root / "charts" / service
        chart.mkdir(parents=True)
        for env in ("staging", "production"):
            (chart / f"values-{env}.yaml").write_text(
                VALUES_TEMPLATE.format(env=env, service=service, digest=digest_of(service))
            )
        (root / "services" / service).mkdir(parents=True)
        (root / "services" / service / "service.yaml").write_text(f"name: {service}\n")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def service_yaml(name: str, uses: list[str]) -> str:
    return (
        f"name: {name}\nkind: python\ndescription: {name} service\nport: 8000\n"
        f"health: /health\nready: /ready\nroute: /api/{name}\n"
        f"uses: [{', '.join(uses)}]\nrun: [uvicorn, {name}.main:app]\n"
    )


def commit_file(repo: Path, relative: str, content: str, message: str) -> str:
    """Write one file and commit it with `message`; returns the new sha."""
    path = repo / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    git(repo, "add", relative)
    git(repo, "commit", "--quiet", "-F", "-", input_text=message)
    return git(repo, "rev-parse", "HEAD")


def push_sources(repo: Path, count: int, service: str = "svc0") -> list[str]:
    """`count` linear source commits (oldest first) pushed to the clone's origin: build inputs."""
    shas = [
        commit_file(repo, f"services/{service}/code.txt", f"build {i}\n", f"feat: build {i}")
        for i in range(count)
    ]
    git(repo, "push", "--quiet", "origin", "HEAD:main")
    return shas


def lose_every_push(ours: Path, theirs: Path) -> None:
    """Before each push from `ours`, `theirs` lands an unrelated commit (a pre-push hook): every
    push of ours loses its race. The commits' subject is `other`."""
    hook = ours / ".git" / "hooks" / "pre-push"
    hook.write_text(
        "#!/bin/sh\n"
        f'cd "{theirs}" && git pull -q --rebase origin main && '
        "date +%s%N >> other.txt && git add other.txt && git commit -qm other && "
        "git push -q origin HEAD:main\n"
    )
    hook.chmod(0o755)
